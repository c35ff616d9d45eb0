"""A push Cursor on RabbitMQ streams (tidings.ports.cursor): one stream
subscription per assigned partition, kept open between fetches.

RabbitMQ pushes chunks under credit: each subscription has at most
``credit`` chunks in flight or buffered, and credit is given back only
once a partition's decoded records are all handed out, so the buffer is
bounded (credit chunks + one decoded chunk per partition). A paused
partition gets no more credit: RabbitMQ stops sending after what it had.
"""

from __future__ import annotations

import asyncio
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from rstream.constants import OffsetType

from ...errors import PartitionNotFound
from ...message import Record, TopicPartition
from . import catalog, records
from .portal import Portal
from .streams import StreamLink, typed
from .subscription import Subscription

R = TypeVar("R")
CREDIT = 4  # chunks per partition in flight or buffered


class _Reader:
    """One partition: its subscription, position and decoded records."""

    def __init__(self, sub: Subscription, position: int) -> None:
        self.sub, self.position = sub, position
        self.ready: deque[Record] = deque()


class StreamCursor:
    """Implements tidings.ports.cursor.Cursor."""

    def __init__(
        self, portal: Portal, link: StreamLink, timeout: float, counts: Callable[[str], int]
    ) -> None:
        self._portal, self._link, self._timeout = portal, link, timeout
        self._counts = counts  # the topic's partition count (blocking; not on the loop)
        self._readers: dict[TopicPartition, _Reader] = {}
        self._paused: set[TopicPartition] = set()
        self._closed = False

    def _call(self, coro: Coroutine[Any, Any, R], extra: float = 0.0) -> R:
        return self._portal.call(typed(coro), self._timeout + extra)

    # ---- positions -------------------------------------------------------
    def assign(self, positions: Mapping[TopicPartition, int]) -> None:
        self._check(positions)
        self._call(self._assign(dict(positions)))

    def _check(self, tps: Iterable[TopicPartition]) -> None:
        """PartitionNotFound / TopicNotFound before anything is subscribed."""
        counts: dict[str, int] = {}
        for tp in tps:
            if tp.topic not in counts:
                counts[tp.topic] = self._counts(tp.topic)
            if not 0 <= tp.partition < counts[tp.topic]:
                raise PartitionNotFound(
                    f"topic {tp.topic!r} has partitions 0..{counts[tp.topic] - 1}, "
                    f"not {tp.partition!r}"
                )

    async def _assign(self, positions: dict[TopicPartition, int]) -> None:
        for tp in [tp for tp in self._readers if tp not in positions]:
            await self._readers.pop(tp).sub.close()
        for tp, offset in positions.items():
            reader = self._readers.get(tp)
            if reader is None or reader.position != offset:
                await self._open(tp, offset)

    async def _open(self, tp: TopicPartition, offset: int) -> None:
        old = self._readers.pop(tp, None)
        if old is not None:
            await old.sub.close()
        stream = catalog.partition_stream(tp.topic, tp.partition)
        sub = await self._link.open_subscription(stream, OffsetType.OFFSET, max(offset, 0), CREDIT)
        self._readers[tp] = _Reader(sub, offset)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._check([tp])
        self._call(self._open(tp, offset))

    def positions(self) -> dict[TopicPartition, int]:
        """Per assigned partition, where the next record returned starts:
        just past what fetch returned (buffered records do not count)."""
        return {tp: reader.position for tp, reader in self._readers.items()}

    def pause(self, tps: frozenset[TopicPartition]) -> None:
        """Kept apart from the assignment: still paused after a re-assign."""
        self._paused |= set(tps)

    def resume(self, tps: frozenset[TopicPartition]) -> None:
        self._paused -= set(tps)

    # ---- fetching --------------------------------------------------------
    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        return self._call(self._fetch(max_records, timeout), extra=timeout)

    async def _fetch(self, limit: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            out = await self._take(limit)
            left = deadline - time.monotonic()
            if out or left <= 0 or self._closed:
                return out
            await self._arrival(left)

    async def _arrival(self, timeout: float) -> None:
        """Wait until RabbitMQ pushes a chunk to an unpaused partition."""
        waits = [
            asyncio.ensure_future(r.sub.arrival())
            for tp, r in self._readers.items()
            if tp not in self._paused
        ]
        if not waits:
            await asyncio.sleep(min(timeout, 0.05))  # nothing to wait on: assign may come
            return
        _, pending = await asyncio.wait(waits, timeout=timeout, return_when=FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _take(self, limit: int) -> list[Record]:
        out: list[Record] = []
        for tp in list(self._readers):
            if tp in self._paused or len(out) >= limit:
                continue
            reader = self._readers[tp]
            if not reader.ready:
                if not reader.sub.alive:  # the connection dropped: subscribe again
                    await self._open(tp, reader.position)
                    reader = self._readers[tp]
                await self._refill(tp, reader)
            while reader.ready and len(out) < limit:
                record = reader.ready.popleft()
                out.append(record)
                reader.position = record.offset + 1
        return out

    async def _refill(self, tp: TopicPartition, reader: _Reader) -> None:
        """Decode the chunks RabbitMQ pushed, give their credit back."""
        chunks = reader.sub.take()
        for chunk in chunks:
            for i, data in enumerate(chunk.messages):
                at = chunk.first_offset + i
                if at >= reader.position:
                    reader.ready.append(
                        records.decode(tp.topic, tp.partition, at, data, chunk.timestamp)
                    )
        await reader.sub.credit(len(chunks))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._call(self._close())

    async def _close(self) -> None:
        for reader in list(self._readers.values()):
            await reader.sub.close()
        self._readers.clear()
