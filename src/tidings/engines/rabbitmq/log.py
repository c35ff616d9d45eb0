"""The log side of the RabbitMQ engine on RabbitMQ streams (3.10+, the
``rabbitmq_stream`` plugin): one stream per partition, the topic catalog
and each group's state in compare-and-set registers (register.py), groups
in groups.py. Blocking methods hop onto the portal's loop.

Offsets are RabbitMQ's stream offsets: dense, because tidings never stores
consumer offsets or anything else in a partition's stream (RabbitMQ's own
offset tracking would take an offset of its own there). Per-record offsets
are not known when a publish is confirmed, so ``append`` returns
``base_offset=None``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from contextlib import aclosing
from typing import Any, NoReturn, TypeVar

from rstream.constants import OffsetType

from ...config import TopicConfig
from ...errors import (
    AlreadyExists,
    ConfigurationError,
    PartitionNotFound,
    TopicNotFound,
    UnsupportedFeature,
)
from ...message import Record
from ...ports.log import AppendResult, Compaction, PartitionInfo, RecordColumns
from .._common import check_batches, check_partition, now_ms
from . import catalog, records
from .groups import StreamGroups
from .portal import Portal
from .register import UNCHANGED, Register
from .streams import StreamLink, typed

R = TypeVar("R")
#: How far a producer's clock may run ahead of the broker's: offset_for_time
#: starts reading this much before the asked time (chunk timestamps are the
#: broker's, record timestamps the producer's).
CLOCK_SKEW_MS = 2000
#: Chunks asked for at a time while reading (credit).
READ_CREDIT = 4


class StreamLog(StreamGroups):
    """Implements LogEngine on RabbitMQ streams."""

    def __init__(self, portal: Portal, link: StreamLink, timeout: float) -> None:
        self._portal, self._link, self._timeout = portal, link, timeout
        self._catalog = Register(link, catalog.CATALOG_STREAM)
        self._registers: dict[str, Register] = {}
        self._listed: set[str] = set()
        self._configs: dict[str, tuple[float, TopicConfig]] = {}  # for appends and reads

    def _call(self, coro: Coroutine[Any, Any, R]) -> R:
        return self._portal.call(typed(coro), self._timeout)

    # ---- topics ------------------------------------------------------
    def create_topic(self, config: TopicConfig) -> None:
        self._call(self._create(config))

    async def _create(self, config: TopicConfig) -> None:
        if config.compact:
            _no_compaction()
        await self._catalog.ensure()

        def reserve(cat: Any) -> tuple[Any, None]:
            if catalog.config_of(cat, config.name) is not None:
                raise AlreadyExists(f"topic {config.name!r} already exists")
            return catalog.with_topic(cat, config), None

        # Reserve the name first: only the winner touches the streams, and a
        # stream under that name with no catalog entry is a leftover.
        await self._catalog.update(reserve)
        try:
            await self._create_streams(config, range(config.partitions))
        except BaseException:
            await self._drop(config.name, config.partitions)
            raise

    async def _create_streams(self, config: TopicConfig, partitions: range) -> None:
        args = catalog.arguments(config)
        for p in partitions:
            stream = catalog.partition_stream(config.name, p)
            await self._link.delete(stream)  # a leftover of a crash is garbage
            await self._link.create(stream, args)

    def delete_topic(self, name: str) -> None:
        config = self.get_topic(name)
        self._call(self._drop(name, config.partitions))
        self.forget_topic(name)

    async def _drop(self, name: str, partitions: int) -> None:
        """Remove the catalog entry, then the streams (a crash in between
        leaves streams that the next create of the name deletes)."""
        await self._catalog.update(lambda cat: (catalog.without_topic(cat, name), None))
        self._configs.pop(name, None)
        for p in range(partitions):
            await self._link.delete(catalog.partition_stream(name, p))

    def get_topic(self, name: str) -> TopicConfig:
        config = self._call(self._load_config(name))
        if config is None:
            raise TopicNotFound(f"topic {name!r} does not exist: create it first")
        return config

    async def _load_config(self, name: str) -> TopicConfig | None:
        await self._catalog.ensure()
        config = catalog.config_of((await self._catalog.load()).value, name)
        if config is None:
            self._configs.pop(name, None)
        else:
            self._configs[name] = (time.monotonic(), config)
        return config

    async def _config(self, name: str, partition: int | None = None) -> TopicConfig:
        """The topic's settings, cached for a second (appends and reads
        check partitions and sizes against them; a miss reloads)."""
        cached = self._configs.get(name)
        fresh = cached is not None and time.monotonic() - cached[0] < 1.0
        if (
            cached is None
            or not fresh
            or (partition is not None and partition >= cached[1].partitions)
        ):
            config = await self._load_config(name)
        else:
            config = cached[1]
        if config is None:
            raise TopicNotFound(f"topic {name!r} does not exist: create it first")
        return config

    def list_topics(self) -> list[TopicConfig]:
        async def load() -> Any:
            await self._catalog.ensure()
            return (await self._catalog.load()).value

        cat = self._call(load()) or catalog.empty()
        return [TopicConfig(**cat["topics"][n]) for n in sorted(cat["topics"])]

    def add_partitions(self, name: str, total: int) -> None:
        self._call(self._add_partitions(name, total))

    async def _add_partitions(self, name: str, total: int) -> None:
        config = await self._load_config(name)
        if config is None:
            raise TopicNotFound(f"topic {name!r} does not exist: create it first")
        if total <= config.partitions:
            raise ConfigurationError(
                f"topic {name!r} has {config.partitions} partitions; "
                f"the new total must be larger, got {total}"
            )
        await self._create_streams(config, range(config.partitions, total))

        def grow(cat: Any) -> tuple[Any, None]:
            now = catalog.config_of(cat, name)
            if now is None or now.partitions != config.partitions:
                raise ConfigurationError(
                    f"topic {name!r} changed while adding partitions: try again"
                )
            return catalog.with_topic(cat, _replace(now, partitions=total)), None

        try:
            await self._catalog.update(grow)
        except BaseException:
            for p in range(config.partitions, total):
                await self._link.delete(catalog.partition_stream(name, p))
            raise
        self._configs.pop(name, None)

    def describe_partitions(self, name: str) -> list[PartitionInfo]:
        config = self.get_topic(name)

        async def every() -> list[PartitionInfo]:  # partitions at once, not in turn
            return list(
                await asyncio.gather(*(self._describe(name, p) for p in range(config.partitions)))
            )

        return self._call(every())

    async def _describe(self, name: str, partition: int) -> PartitionInfo:
        """First offset: the first chunk's. Next offset: after the last
        chunk's last record. Size: not told by the stream protocol (0)."""
        stream = catalog.partition_stream(name, partition)
        first = last = None
        async with aclosing(self._link.chunks(stream, OffsetType.FIRST, None, credit=1)) as chunks:
            async for chunk in chunks:
                first = chunk.first_offset
                break
        async with aclosing(self._link.chunks(stream, OffsetType.LAST, None)) as chunks:
            async for chunk in chunks:
                last = chunk.first_offset + len(chunk.messages)
        if first is None or last is None:
            return PartitionInfo(partition, 0, 0, 0)
        return PartitionInfo(partition, first, last, 0)

    # ---- records -----------------------------------------------------
    def append(self, topic: str, batches: Mapping[int, RecordColumns]) -> dict[int, AppendResult]:
        return self._call(self._append(topic, batches))

    async def _append(
        self, topic: str, batches: Mapping[int, RecordColumns]
    ) -> dict[int, AppendResult]:
        config = await self._config(topic, max(batches, default=None))
        check_batches(config, batches)
        ts = now_ms()
        encoded = {
            p: records.encode_all(cols.values, cols.keys, cols.headers, ts)
            for p, cols in batches.items()
        }
        for messages in encoded.values():
            self._link.check_sizes(messages)  # before anything is sent
        out = {}
        for p, messages in encoded.items():
            if messages:
                await self._link.publish(catalog.partition_stream(topic, p), messages)
            # Offsets are not known at confirm time (see module doc).
            out[p] = AppendResult(None, len(messages), ts)
        return out

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        return self._call(self._read(topic, partition, offset, max_records))

    async def _read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        """Subscribe at ``offset``, collect, unsubscribe: three round trips
        and a barrier per call (the push Cursor avoids them)."""
        config = await self._config(topic, partition)
        check_partition(config, partition)
        out: list[Record] = []
        stream = catalog.partition_stream(topic, partition)
        chunks = self._link.chunks(stream, OffsetType.OFFSET, max(offset, 0), READ_CREDIT)
        async with aclosing(chunks):  # stopping early unsubscribes at once
            async for chunk in chunks:
                for i, data in enumerate(chunk.messages):
                    at = chunk.first_offset + i
                    if at >= offset:
                        out.append(records.decode(topic, partition, at, data, chunk.timestamp))
                if len(out) >= limit:
                    break  # finish the stored chunk: may return a little more
        return out

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        return self._call(self._offset_for_time(topic, partition, timestamp_ms))

    async def _offset_for_time(self, topic: str, partition: int, ts: int) -> int:
        """RabbitMQ finds the chunk by its (broker) timestamp; tidings then
        reads on to the first record whose own timestamp is ≥ ``ts``."""
        config = await self._config(topic, partition)
        check_partition(config, partition)
        stream = catalog.partition_stream(topic, partition)
        start = max(0, ts - CLOCK_SKEW_MS)
        async with aclosing(
            self._link.chunks(stream, OffsetType.TIMESTAMP, start, READ_CREDIT)
        ) as chunks:
            async for chunk in chunks:
                for i, data in enumerate(chunk.messages):
                    record = records.decode(
                        topic, partition, chunk.first_offset + i, data, chunk.timestamp
                    )
                    if record.timestamp >= ts:
                        return record.offset
        return (await self._describe(topic, partition)).next_offset

    # ---- maintenance (RabbitMQ applies retention itself) --------------
    def enforce_retention(self, topic: str, now_ms: int) -> int:
        """RabbitMQ drops old segments itself when one fills (max-age,
        max-length-bytes): nothing to do here, nothing counted."""
        self.get_topic(topic)
        return 0

    def compact(self, topic: str, now_ms: int) -> int:
        _no_compaction()

    def compact_round(self, topic: str, now_ms: int) -> Compaction:
        _no_compaction()


def _no_compaction() -> NoReturn:
    raise UnsupportedFeature(
        "RabbitMQ streams cannot compact (keep the latest record per key): use a "
        "sqlite:// or postgresql:// URL for compacted topics"
    )


def _replace(config: TopicConfig, **changes: Any) -> TopicConfig:
    from dataclasses import replace

    return replace(config, **changes)


__all__ = ["UNCHANGED", "PartitionNotFound", "StreamLog"]
