"""``raw-rstream``: the log workloads written directly on rstream (the
RabbitMQ stream protocol, port 5552), run beside tidings when ``--url
amqp://…`` is given (issue 12).

The same work as tidings' ``log.append.batched`` and ``log.consume.group``:
100-byte records appended in batches of 1,000, each batch's confirms awaited
before the next; then a named consumer reads the stream from the start and
stores its offset after every 1,000 records (a group commit per poll).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from rstream import ConfirmationStatus, Consumer, MessageContext, Producer

STREAM_PORT = 5552  # the rabbitmq_stream plugin's default


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    username: str
    password: str
    vhost: str

    @classmethod
    def from_url(cls, url: str) -> Server:
        """The stream endpoint of an ``amqp://`` URL: same host, user and
        vhost; port 5552 unless the URL says ``stream_port=``."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            parts.hostname or "localhost",
            int(query.get("stream_port", STREAM_PORT)),
            unquote(parts.username or "guest"),
            unquote(parts.password or "guest"),
            vhost,
        )

    def producer(self) -> Producer:
        return Producer(
            self.host, self.port, username=self.username, password=self.password,
            vhost=self.vhost,
        )

    def consumer(self) -> Consumer:
        return Consumer(
            self.host, self.port, username=self.username, password=self.password,
            vhost=self.vhost,
        )


#: Runs with a producer on a fresh stream; returns (records, seconds) timed.
Work = Callable[[Server, Producer, str], Awaitable[tuple[int, float]]]


def run(url: str, work: Work) -> tuple[int, float]:
    """``work`` on a fresh stream (deleted afterwards)."""
    return asyncio.run(_on_stream(Server.from_url(url), work))


async def _on_stream(server: Server, work: Work) -> tuple[int, float]:
    stream = f"bench-raw-{uuid.uuid4().hex[:12]}"
    async with server.producer() as producer:
        await producer.create_stream(stream)
        try:
            return await work(server, producer, stream)
        finally:
            await producer.delete_stream(stream, missing_ok=True)


class Confirms:
    """Counts publish confirms; :meth:`wait` until ``n`` have come."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    async def __call__(self, status: ConfirmationStatus) -> None:
        if not status.is_confirmed:
            raise RuntimeError(f"rstream: publish not confirmed ({status.response_code})")
        self.count += 1
        self._changed.set()

    async def wait(self, n: int) -> None:
        while self.count < n:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 30)


async def append(producer: Producer, stream: str, record: bytes, count: int, batch: int) -> None:
    """``count`` records in batches of ``batch``, each batch confirmed."""
    confirms = Confirms()
    values = [record] * batch
    sent = 0
    while sent < count:
        chunk = values[: min(batch, count - sent)]
        await producer.send_batch(stream, chunk, on_publish_confirm=confirms)
        sent += len(chunk)
        await confirms.wait(sent)


def appended(record: bytes, count: int, batch: int) -> Work:
    async def work(server: Server, producer: Producer, stream: str) -> tuple[int, float]:
        t0 = time.perf_counter()
        await append(producer, stream, record, count, batch)
        return count, time.perf_counter() - t0

    return work


def consumed(record: bytes, count: int, batch: int, repeats: int) -> Work:
    """Fill once (not timed); then ``repeats`` named consumers each read it
    all from the start (timed); the total over the total time."""

    async def work(server: Server, producer: Producer, stream: str) -> tuple[int, float]:
        await append(producer, stream, record, count, batch)
        seen, seconds = 0, 0.0
        for i in range(repeats):
            t0 = time.perf_counter()
            seen += await read_all(server, stream, f"bench-{i}", count, batch)
            seconds += time.perf_counter() - t0
        return seen, seconds

    return work


async def read_all(server: Server, stream: str, name: str, count: int, commit_every: int) -> int:
    done = asyncio.Event()
    seen = 0

    async def on_message(_message: bytes, context: MessageContext) -> None:
        nonlocal seen
        seen += 1
        if seen % commit_every == 0 or seen >= count:
            await context.consumer.store_offset(stream, name, context.offset)
        if seen >= count:
            done.set()

    async with server.consumer() as consumer:
        await consumer.subscribe(stream, on_message, subscriber_name=name)
        await asyncio.wait_for(done.wait(), 60)
    return seen
