"""``raw-aio-pika``: the queue workloads written directly on aio-pika, run
beside tidings when ``--url amqp://…`` is given (issue 12).

The same work as tidings' own workloads on the same server: durable quorum
queues, persistent 256-byte bodies, publisher confirms; ``publish.batched``
sends 100 and waits for their 100 confirms, ``publish.single`` waits for each
confirm, ``consume.ack`` takes 100 from a consumer with prefetch 200 (the
engine's: twice the claim size) and acks each 100 with one ``multiple`` ack,
the way a careful aio-pika user would.
Everything runs on one asyncio loop in this thread: no portal, no leases.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}
#: Runs on a fresh queue; returns (messages, seconds) of the timed part.
Work = Callable[[AbstractChannel, AbstractQueue], Awaitable[tuple[int, float]]]


def run(url: str, work: Work) -> tuple[int, float]:
    """``work`` on a fresh quorum queue (deleted afterwards)."""
    return asyncio.run(_on_queue(url, work))


async def _on_queue(url: str, work: Work) -> tuple[int, float]:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        name = f"bench-raw-{uuid.uuid4().hex[:12]}"
        queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
        try:
            return await work(channel, queue)
        finally:
            await channel.queue_delete(name)
    finally:
        await connection.close()


def _message(body: bytes) -> aio_pika.Message:
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def publish(channel: AbstractChannel, queue: str, bodies: list[bytes]) -> None:
    """Send the batch, then wait for every confirm."""
    exchange = channel.default_exchange
    await asyncio.gather(*(exchange.publish(_message(b), routing_key=queue) for b in bodies))


def batched(body: bytes, count: int, batch: int) -> Work:
    async def work(channel: AbstractChannel, queue: AbstractQueue) -> tuple[int, float]:
        t0 = time.perf_counter()
        await fill(channel, queue.name, body, count, batch)
        return count, time.perf_counter() - t0

    return work


async def fill(channel: AbstractChannel, queue: str, body: bytes, count: int, batch: int) -> None:
    bodies = [body] * batch
    for start in range(0, count, batch):
        await publish(channel, queue, bodies[: min(batch, count - start)])


def single(body: bytes, count: int) -> Work:
    async def work(channel: AbstractChannel, queue: AbstractQueue) -> tuple[int, float]:
        t0 = time.perf_counter()
        for _ in range(count):
            await channel.default_exchange.publish(_message(body), routing_key=queue.name)
        return count, time.perf_counter() - t0

    return work


def consumed(body: bytes, count: int, batch: int) -> Work:
    """Fill ``count`` (not timed), then drain them (timed)."""

    async def work(channel: AbstractChannel, queue: AbstractQueue) -> tuple[int, float]:
        await fill(channel, queue.name, body, count, 1000)
        t0 = time.perf_counter()
        seen = await drain(channel, queue, count, batch)
        return seen, time.perf_counter() - t0

    return work


async def drain(channel: AbstractChannel, queue: AbstractQueue, count: int, batch: int) -> int:
    """Consume with prefetch 2 x ``batch``; one ``multiple`` ack per ``batch``."""
    await channel.set_qos(prefetch_count=2 * batch)
    seen = 0
    last: AbstractIncomingMessage | None = None
    async with queue.iterator() as messages:
        async for message in messages:
            seen, last = seen + 1, message
            if seen % batch == 0 or seen >= count:
                await message.ack(multiple=True)
                last = None
            if seen >= count:
                break
    if last is not None:
        await last.ack(multiple=True)
    return seen
