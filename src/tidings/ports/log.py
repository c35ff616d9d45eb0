"""The log side of an engine (contracts L1–L6).

All methods are blocking and thread-safe. Errors: ``TopicNotFound``,
``PartitionNotFound``, ``AlreadyExists``, ``RecordTooLarge``,
``FencedError``, ``CorruptDataError``, ``EngineError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import accumulate
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from ..config import TopicConfig
from ..groups.coordinator import GroupState
from ..message import Headers, Record, TopicPartition

T = TypeVar("T")


class RecordColumns(NamedTuple):
    """One partition's share of a produce call, column by column so engines
    can encode a whole batch with a few C-level calls.

    ``keys``/``headers`` are ``None`` when no record has one.
    """

    values: Sequence[bytes | None]
    keys: Sequence[bytes | None] | None = None
    headers: Sequence[Headers] | None = None


class PartitionedColumns(Mapping[int, RecordColumns]):
    """A produce call's columns grouped by partition, kept flat: records of
    ``partitions[0]`` first (``counts[0]`` of them), then the next
    partition's, partitions ascending.

    It is the ``Mapping[int, RecordColumns]`` an engine's ``append`` takes
    (a partition's share is sliced out when asked for), and an engine that
    stores many partitions' records together (SQLite's spread rows) reads
    the flat columns (``flat_values``, ``flat_keys``, ``flat_headers``)
    instead: a call spread over 1,000 partitions then
    builds no object per partition."""

    __slots__ = ("_spans", "counts", "flat_headers", "flat_keys", "flat_values", "partitions")

    def __init__(
        self,
        partitions: list[int],
        counts: list[int],
        values: list[bytes | None],
        keys: list[bytes | None] | None,
        headers: list[Headers] | None,
    ) -> None:
        self.partitions, self.counts = partitions, counts
        self.flat_values, self.flat_keys, self.flat_headers = values, keys, headers
        self._spans: dict[int, tuple[int, int]] | None = None

    def __getitem__(self, partition: int) -> RecordColumns:
        if self._spans is None:
            ends = list(accumulate(self.counts))
            self._spans = dict(zip(self.partitions, zip([0, *ends[:-1]], ends)))
        start, end = self._spans[partition]  # KeyError: not a partition of the call
        return RecordColumns(
            self.flat_values[start:end],
            None if self.flat_keys is None else self.flat_keys[start:end],
            None if self.flat_headers is None else self.flat_headers[start:end],
        )

    def __iter__(self) -> Iterator[int]:
        return iter(self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)


class PartitionInfo(NamedTuple):
    """``first_offset`` is the oldest retained offset, ``next_offset`` the
    offset the next append gets; ``size`` the stored bytes."""

    partition: int
    first_offset: int
    next_offset: int
    size: int


class AppendResult(NamedTuple):
    """Where one partition's batch went: offsets ``base_offset ..
    base_offset + records - 1``, all with log-append time ``timestamp``.

    ``base_offset`` is ``None`` when the engine does not know offsets at
    publish time (a broker that assigns them as it stores, and tells them
    only to readers: RabbitMQ streams); such an engine declares
    ``Features.append_offsets`` unsupported. The records are stored all
    the same, densely (L2), and readers see their offsets."""

    base_offset: int | None
    records: int
    timestamp: int


class Compaction(NamedTuple):
    """What one compaction did: ``removed`` records, and when the oldest
    tombstone it kept becomes old enough to drop (ms; ``None``: none kept),
    so a topic that receives nothing more is compacted again then (L6)."""

    removed: int
    tombstones_due_ms: int | None


GroupTransition = Callable[[GroupState, dict[str, int]], T]


class LogEngine(Protocol):
    """Topics, partitions, appends, reads, group storage and maintenance."""

    # ---- topics
    def create_topic(self, config: TopicConfig) -> None: ...
    def delete_topic(self, name: str) -> None: ...
    def get_topic(self, name: str) -> TopicConfig: ...
    def list_topics(self) -> list[TopicConfig]: ...
    def add_partitions(self, name: str, total: int) -> None: ...
    def describe_partitions(self, name: str) -> list[PartitionInfo]: ...

    # ---- records
    def append(self, topic: str, batches: Mapping[int, RecordColumns]) -> dict[int, AppendResult]:
        """Append to several partitions of one topic in one atomic, durable
        transaction (L1); returns once durable under the topic's durability."""
        ...

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        """Records with offset ≥ ``offset`` in order, at most ``max_records``
        (may return a little more to finish a stored batch); ``[]`` at the end."""
        ...

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """The first offset whose timestamp is ≥ ``timestamp_ms``, else the next offset."""
        ...

    # ---- group storage: what tidings.groups.stored.StoredGroups (the
    # engine's ``groups``) is built on; nothing else above the engines calls it
    def group_transition(self, group: str, fn: GroupTransition[T]) -> T:
        """Load the group's state (new if absent), apply ``fn(state, counts)``
        where ``counts`` maps every topic to its partition count, store the
        state, all atomically; return what ``fn`` returned."""
        ...

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        """Store committed offsets after ``GroupState.check_commit`` passed in
        the same transaction (fencing, L4)."""
        ...

    def committed(self, group: str) -> dict[TopicPartition, int]: ...
    def list_groups(self) -> list[str]: ...
    def load_group(self, group: str) -> GroupState | None: ...
    def delete_group(self, group: str) -> None: ...

    # ---- maintenance (L6)
    def enforce_retention(self, topic: str, now_ms: int) -> int:
        """Delete whole records past the topic's retention; return how many."""
        ...

    def compact(self, topic: str, now_ms: int) -> int:
        """Keep the latest record per key (offsets preserved), drop tombstones
        older than the topic's tombstone retention; return records removed."""
        ...

    def compact_round(self, topic: str, now_ms: int) -> Compaction:
        """:meth:`compact`, also saying when a kept tombstone falls due."""
        ...


@runtime_checkable
class TransactionalLog(Protocol):
    """A log that can append inside the caller's own database transaction
    (SQL engines): the records exist iff the caller's transaction commits."""

    def append_in(
        self, conn: Any, topic: str, batches: Mapping[int, RecordColumns]
    ) -> dict[int, AppendResult]: ...


@runtime_checkable
class TransactionalCommit(Protocol):
    """A log that can commit a group's offsets inside the caller's own
    database transaction (SQL engines), fencing (L4) checked in it."""

    def commit_in(
        self,
        conn: Any,
        group: str,
        member_id: str | None,
        offsets: Mapping[TopicPartition, int],
        now: float,
    ) -> None: ...
