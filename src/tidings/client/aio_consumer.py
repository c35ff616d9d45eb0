"""``AsyncConsumer``: a :class:`Consumer` driven from asyncio, safe to cancel.

The consumer lives on one dedicated thread (it keeps its own read
connection). Reads run there and only *fill* the consumer's read-ahead
buffer; records are handed out on the loop, after the read returned. So a
cancelled ``poll`` (``asyncio.wait_for(consumer.poll(), 0.2)``) loses
nothing: the read it started finishes on the thread, its records stay in
the buffer, and the next call waits for that read before doing anything
else and returns them first. Nothing the caller never received is counted
as handed out, so nothing of it is committed.

Every call holds an ``asyncio.Lock`` and first waits for a read a
cancelled caller left running, so the consumer is touched by one side at a
time. ``seek`` does not block the loop: it is applied on the consumer's
thread before the next call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ..message import Record, TopicPartition
from .consumer import Consumer
from .starts import Start

R = TypeVar("R")
log = logging.getLogger("tidings.consumer")


class AsyncConsumer:
    """See :class:`Consumer`, including what is committed when. Cancelling
    any call loses no record."""

    def __init__(self, consumer: Consumer, executor: ThreadPoolExecutor) -> None:
        self._c = consumer
        self._ex = executor
        self._lock = asyncio.Lock()
        self._running: asyncio.Future[Any] | None = None  # left by a cancelled caller
        self._seeks: dict[TopicPartition, int] = {}

    async def _settled(self, timeout: float | None = None) -> bool:
        """Wait for a call a cancelled caller left running; False if it is
        still running after ``timeout``."""
        running = self._running
        if running is None:
            return True
        done, _ = await asyncio.wait({running}, timeout=timeout)
        if not done:
            return False
        if not running.cancelled():
            running.exception()  # its caller is gone; the next call meets any error again
        self._running = None
        return True

    async def _on_thread(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn`` on the consumer's thread; hold the lock and call
        ``_settled`` first. A cancelled caller leaves it running."""
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._ex, partial(self._apply_then, fn, *args))
        self._running = running
        result = await asyncio.shield(running)
        self._running = None
        return result

    def _apply_then(self, fn: Callable[..., R], *args: Any) -> R:
        seeks, self._seeks = self._seeks, {}
        for tp, offset in seeks.items():
            try:
                self._c.seek(tp, offset)
            except ConfigurationError:
                log.warning("seek(%s) dropped: the partition was revoked meanwhile", tp)
        return fn(*args)

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        async with self._lock:
            await self._settled()
            return await self._on_thread(fn, *args)

    async def poll(self, timeout: float = 1.0, max_records: int = 10_000) -> list[Record]:
        """See :meth:`Consumer.poll`. If a cancelled poll's read is still
        running, waits for it (within ``timeout``) and returns its records."""
        start = time.monotonic()
        async with self._lock:
            if not await self._settled(timeout):
                return []
            left = max(0.0, timeout - (time.monotonic() - start))
            await self._on_thread(self._c._fill, left, max_records)
            return self._c._hand_out(max_records)

    async def commit(
        self, offsets: Mapping[TopicPartition, int] | None = None, *, connection: Any = None
    ) -> None:
        """See :meth:`Consumer.commit`. A ``connection`` is used on the
        consumer's thread (open sqlite3 ones with ``check_same_thread=False``)."""
        await self._call(partial(self._c.commit, connection=connection), offsets)

    async def seek_to(self, where: Start, tps: list[TopicPartition] | None = None) -> None:
        await self._call(self._c.seek_to, where, tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` from the next call on (never blocks the
        loop). Raises ConfigurationError if ``tp`` is not assigned."""
        if tp not in self._c.assignment():
            raise ConfigurationError(f"{tp} is not assigned to this consumer")
        self._seeks[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return self._c.assignment()

    async def lag(self) -> dict[TopicPartition, int]:
        return await self._call(self._c.lag)

    async def aclose(self) -> None:
        """See :meth:`Consumer.close`."""
        await self._close(None)

    async def _close(self, exc_type: object) -> None:
        try:
            await self._call(self._c.__exit__, exc_type, None, None)
        finally:
            self._ex.shutdown(wait=False)

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Record]:
        """One record at a time, as :meth:`Consumer.__iter__`; one thread hop
        per read, not per record."""
        while True:
            async with self._lock:
                await self._settled()
                record = self._c._take_one()
                if record is None:
                    await self._on_thread(self._c._fill, 1.0, 10_000)
                    record = self._c._take_one()
            if record is not None:
                yield record

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self._close(exc_type)
