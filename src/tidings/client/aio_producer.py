"""``AsyncProducer``: buffered sends from asyncio without a Task per record.

``send`` runs on the loop and never blocks it: the record goes into the
blocking producer's buffer (a few dict and list operations) and gets a plain
``asyncio.Future``. Records share their flight's ``concurrent.futures.Future``;
the first record of a flight hooks one callback on it, and when the flight
is stored that callback hops to the loop once and resolves every record's
future of the flight. Before a topic's settings are known (the first send to
it), its records wait on the loop, in order, while a thread reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from ..config import ProducerConfig
from ..errors import BufferFull
from ..message import Headers, RecordMetadata
from ..ports.log import AppendResult
from ..tracing import ENABLED as TRACING
from ..tracing import inject, inject_each
from .aio_threads import Threads
from .producer import Ack, BatchMetadata, Producer

SendArgs = tuple[str, Any, bytes | str | None, Headers | None, int | None]


class AsyncProducer:
    """See :class:`Producer`; ``await producer.send(...)`` waits for durability.

    ``send`` raises ``BufferFull`` at once when the buffer is full (it never
    blocks the loop): await earlier sends or ``flush()`` to keep within it."""

    def __init__(
        self,
        make: Callable[[], Awaitable[Producer]],
        threads: Threads,
        config: ProducerConfig,
        producer: Producer | None = None,
    ) -> None:
        self._make = make
        self._p = producer
        self._limit = config.buffer_bytes
        self._waiting_bytes = 0
        self._threads = threads
        self._waiting: dict[str, list[tuple[SendArgs, asyncio.Future[RecordMetadata]]]] = {}
        self._preparing: set[asyncio.Task[None]] = set()
        self._acks: dict[Future[AppendResult], list[tuple[Ack, asyncio.Future[RecordMetadata]]]]
        self._acks = {}

    def send(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Buffer one record now; the returned future resolves when durable.
        Raises BufferFull, SerializationError."""
        future = asyncio.get_running_loop().create_future()
        if TRACING:  # here, in the caller's context: the send may run later elsewhere
            headers = inject(headers)
        args: SendArgs = (topic, value, key, headers, partition)
        p = self._p
        if p is None or topic in self._waiting or (partition is None and not p.prepared(topic)):
            self._wait_for(topic, args, future)
        else:
            self._watch(p.send_within(*args, 0.0), future)
        return future

    def _wait_for(self, topic: str, args: SendArgs, future: asyncio.Future[RecordMetadata]) -> None:
        size = _estimate(args[1]) + _estimate(args[2])
        held = self._waiting_bytes + (0 if self._p is None else self._p.held())
        if held and held + size > self._limit:
            raise BufferFull(
                f"{held} of buffer_bytes={self._limit} are waiting for topic {topic!r}'s "
                "settings to load: await the first send to a topic before sending many"
            )
        self._waiting_bytes += size
        waiting = self._waiting.get(topic)
        if waiting is None:
            waiting = self._waiting[topic] = []
            task = asyncio.ensure_future(self._prepare(topic))
            self._preparing.add(task)
            task.add_done_callback(self._preparing.discard)
        waiting.append((args, future))

    async def _prepare(self, topic: str) -> None:
        try:
            p = await self._producer()
            await self._threads.call(p.prepare, topic)
        except Exception as exc:
            for _, future in self._waiting.pop(topic, []):
                if not future.done():
                    future.set_exception(exc)
            return
        for args, future in self._waiting.pop(topic, []):
            try:
                self._watch(p.send_within(*args, 0.0), future)
            except Exception as exc:
                future.set_exception(exc)

    def _take_waiting(self, topic: str) -> list[tuple[SendArgs, asyncio.Future[RecordMetadata]]]:
        waiting = self._waiting.pop(topic, [])
        self._waiting_bytes -= sum(_estimate(a[1]) + _estimate(a[2]) for a, _ in waiting)
        return waiting

    async def _producer(self) -> Producer:
        if self._p is None:
            self._p = await self._make()
        return self._p

    def _watch(self, ack: Ack, future: asyncio.Future[RecordMetadata]) -> None:
        flight = ack.future
        acks = self._acks.get(flight)
        if acks is None:
            acks = self._acks[flight] = []
            flight.add_done_callback(partial(_on_loop, asyncio.get_running_loop(), self._resolve))
        acks.append((ack, future))

    def _resolve(self, flight: Future[AppendResult]) -> None:
        exc = flight.exception()
        for ack, future in self._acks.pop(flight, []):
            if future.done():
                continue  # the caller cancelled it
            if exc is None:
                future.set_result(ack.result())
            else:
                future.set_exception(exc)

    async def send_batch(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[bytes | str | None] | None = None,
        headers: Sequence[Headers] | None = None,
        partition: int | None = None,
    ) -> BatchMetadata:
        """See :meth:`Producer.send_batch` (one thread hop per call)."""
        if TRACING:
            headers = inject_each(headers, len(values))
        p = await self._producer()
        return await self._threads.call(p.send_batch, topic, values, keys, headers, partition)

    async def flush(self) -> None:
        """Wait until everything sent so far is durable (or failed)."""
        while self._preparing:
            await asyncio.wait(set(self._preparing))
        if self._p is not None:
            await self._threads.wait(self._p.flush)

    async def aclose(self) -> None:
        await self.flush()
        if self._p is not None:
            await self._threads.wait(self._p.close)

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _on_loop(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[Future[AppendResult]], None],
    flight: Future[AppendResult],
) -> None:
    """Runs on the sender thread: hand the stored flight to the loop."""
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits the acks
        loop.call_soon_threadsafe(fn, flight)


def _estimate(value: Any) -> int:
    """Bytes a value will take, before it is encoded (records waiting for
    their topic's settings count toward the buffer bound by this)."""
    if value is None:
        return 0
    if isinstance(value, bytes | bytearray | memoryview | str):
        return len(value)
    return 64
