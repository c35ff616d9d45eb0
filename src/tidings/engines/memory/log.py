"""Topics and groups held in dicts, under one lock."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import repeat

from ...config import TopicConfig
from ...errors import AlreadyExists, ConfigurationError, GroupNotFound, TopicNotFound
from ...groups.coordinator import GroupState
from ...message import EMPTY_HEADERS, Record, TopicPartition
from ...ports.log import AppendResult, Compaction, GroupTransition, PartitionInfo, RecordColumns, T
from .._common import check_batches, check_partition, now_ms


@dataclass
class _Partition:
    offsets: list[int] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    next_offset: int = 0
    first_offset: int = 0
    last_ts: int = 0

    @property
    def bytes(self) -> int:
        return sum(len(r.value or b"") + len(r.key or b"") for r in self.records)


@dataclass
class _Topic:
    config: TopicConfig
    partitions: list[_Partition]


class MemoryLog:
    """The log side of :class:`~tidings.engines.memory.MemoryEngine`."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self._lock = threading.RLock()
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, GroupState] = {}
        self._offsets: dict[str, dict[TopicPartition, int]] = {}
        self._notify = notify

    # ---- topics
    def create_topic(self, config: TopicConfig) -> None:
        with self._lock:
            if config.name in self._topics:
                raise AlreadyExists(f"topic {config.name!r} already exists")
            parts = [_Partition() for _ in range(config.partitions)]
            self._topics[config.name] = _Topic(config, parts)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self._topic(name)
            del self._topics[name]
            for offsets in self._offsets.values():  # as on SQLite: offsets go with the topic
                for tp in [tp for tp in offsets if tp.topic == name]:
                    del offsets[tp]

    def get_topic(self, name: str) -> TopicConfig:
        with self._lock:
            return self._topic(name).config

    def list_topics(self) -> list[TopicConfig]:
        with self._lock:
            return [t.config for _, t in sorted(self._topics.items())]

    def add_partitions(self, name: str, total: int) -> None:
        with self._lock:
            topic = self._topic(name)
            if total <= topic.config.partitions:
                raise ConfigurationError(
                    f"topic {name!r} has {topic.config.partitions} partitions; "
                    f"the new total must be larger, got {total}"
                )
            topic.config = replace(topic.config, partitions=total)
            topic.partitions.extend(_Partition() for _ in range(total - len(topic.partitions)))

    def describe_partitions(self, name: str) -> list[PartitionInfo]:
        with self._lock:
            parts = self._topic(name).partitions
            return [
                PartitionInfo(i, p.first_offset, p.next_offset, p.bytes)
                for i, p in enumerate(parts)
            ]

    # ---- records
    def append(self, topic: str, batches: Mapping[int, RecordColumns]) -> dict[int, AppendResult]:
        with self._lock:
            t = self._topic(topic)
            check_batches(t.config, batches)
            out = {p: self._append_one(topic, t.partitions[p], p, c) for p, c in batches.items()}
        self._notify("log:" + topic)
        return out

    @staticmethod
    def _append_one(topic: str, part: _Partition, p: int, cols: RecordColumns) -> AppendResult:
        n = len(cols.values)
        base, ts = part.next_offset, max(now_ms(), part.last_ts)
        keys = cols.keys if cols.keys is not None else repeat(None, n)
        headers = cols.headers if cols.headers is not None else repeat(EMPTY_HEADERS, n)
        offsets = range(base, base + n)
        part.records.extend(
            map(Record, repeat(topic), repeat(p), offsets, keys, cols.values, repeat(ts), headers)
        )
        part.offsets.extend(offsets)
        part.next_offset, part.last_ts = base + n, ts
        return AppendResult(base, n, ts)

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        with self._lock:
            t = self._topic(topic)
            check_partition(t.config, partition)
            part = t.partitions[partition]
            i = bisect.bisect_left(part.offsets, offset)
            return part.records[i : i + max_records]

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        with self._lock:
            t = self._topic(topic)
            check_partition(t.config, partition)
            part = t.partitions[partition]
            for r in part.records:
                if r.timestamp >= timestamp_ms:
                    return r.offset
            return part.next_offset

    # ---- groups
    def group_transition(self, group: str, fn: GroupTransition[T]) -> T:
        with self._lock:
            state = self._groups.get(group) or GroupState(group)
            counts = {name: t.config.partitions for name, t in self._topics.items()}
            result = fn(state, counts)
            self._groups[group] = state
            return result

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        with self._lock:
            state = self._groups.get(group) or GroupState(group)
            state.check_commit(member_id, set(offsets), now)
            self._groups[group] = state
            self._offsets.setdefault(group, {}).update(offsets)

    def committed(self, group: str) -> dict[TopicPartition, int]:
        with self._lock:
            return dict(self._offsets.get(group, {}))

    def list_groups(self) -> list[str]:
        with self._lock:
            return sorted(set(self._groups) | set(self._offsets))

    def load_group(self, group: str) -> GroupState | None:
        with self._lock:
            state = self._groups.get(group)
            return None if state is None else GroupState.from_json(state.to_json())

    def delete_group(self, group: str) -> None:
        with self._lock:
            if group not in self._groups and group not in self._offsets:
                raise GroupNotFound(f"consumer group {group!r} does not exist")
            self._groups.pop(group, None)
            self._offsets.pop(group, None)

    # ---- maintenance
    def enforce_retention(self, topic: str, now_ms: int) -> int:
        with self._lock:
            t = self._topic(topic)
            return sum(self._retain(t.config, p, now_ms) for p in t.partitions)

    @staticmethod
    def _retain(config: TopicConfig, part: _Partition, now: int) -> int:
        drop = 0
        if config.retention_s is not None:
            cutoff = now - int(config.retention_s * 1000)
            while drop < len(part.records) and part.records[drop].timestamp < cutoff:
                drop += 1
        if config.retention_bytes is not None:
            size = part.bytes - sum(
                len(r.value or b"") + len(r.key or b"") for r in part.records[:drop]
            )
            while drop < len(part.records) and size > config.retention_bytes:
                r = part.records[drop]
                size -= len(r.value or b"") + len(r.key or b"")
                drop += 1
        if drop:
            del part.records[:drop], part.offsets[:drop]
            part.first_offset = part.offsets[0] if part.offsets else part.next_offset
        return drop

    def compact(self, topic: str, now_ms: int) -> int:
        return self.compact_round(topic, now_ms).removed

    def compact_round(self, topic: str, now_ms: int) -> Compaction:
        with self._lock:
            t = self._topic(topic)
            if not t.config.compact:
                raise ConfigurationError(
                    f"topic {topic!r} is not compacted (create it with compact)"
                )
            keep_ms = int(t.config.tombstone_retention_s * 1000)
            results = [self._compact(p, now_ms - keep_ms) for p in t.partitions]
            oldest = [ts for _, ts in results if ts is not None]
            due = min(oldest) + keep_ms + 1 if oldest else None
            return Compaction(sum(n for n, _ in results), due)

    @staticmethod
    def _compact(part: _Partition, horizon: int) -> tuple[int, int | None]:
        """Compact one partition; return (records removed, timestamp of the
        oldest tombstone kept)."""
        latest: dict[bytes | None, int] = {}
        for r in part.records:
            latest[r.key] = r.offset
        keep = [
            r
            for r in part.records
            if r.key is None
            or (latest[r.key] == r.offset and not (r.value is None and r.timestamp < horizon))
        ]
        removed = len(part.records) - len(keep)
        part.records = keep
        part.offsets = [r.offset for r in keep]
        tombstones = [r.timestamp for r in keep if r.value is None and r.key is not None]
        return removed, min(tombstones, default=None)

    def _topic(self, name: str) -> _Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise TopicNotFound(
                f"topic {name!r} does not exist: create it with `tidings topics create {name}`"
            ) from None
