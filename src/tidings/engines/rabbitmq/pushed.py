"""Claiming many messages at once by a short-lived consumer: basic.get on a
quorum queue costs a Raft round per message (about 2 ms here), a consumer
streams them. The consumer lives for one claim: it is limited (per-consumer
prefetch) to what the claim asked for, so RabbitMQ never pushes a message the
claim does not take, and it is cancelled before the claim returns."""

from __future__ import annotations

import asyncio
import contextlib

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.message import IncomingMessage
from aiormq.abc import DeliveredMessage

#: How long a claim waits for messages the queue said were ready (others
#: may have taken them meanwhile).
SETTLE_S = 0.05


async def take(channel: AbstractChannel, queue: str, want: int) -> list[AbstractIncomingMessage]:
    """Up to ``want`` messages from ``queue``, leased on ``channel``."""
    raw = await channel.get_underlay_channel()
    got: list[AbstractIncomingMessage] = []
    enough = asyncio.Event()
    late: list[DeliveredMessage] = []
    open_ = True

    async def deliver(message: DeliveredMessage) -> None:
        if not open_:  # cannot happen after CancelOk; returned rather than stuck
            late.append(message)
            return
        got.append(IncomingMessage(message, no_ack=False))
        if len(got) >= want:
            enough.set()

    await raw.basic_qos(prefetch_count=want, global_=False)
    ok = await raw.basic_consume(queue, deliver, no_ack=False)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), SETTLE_S)
    finally:
        assert ok.consumer_tag is not None
        await raw.basic_cancel(ok.consumer_tag)
        await asyncio.sleep(0)  # deliveries before the CancelOk run their callbacks first
        open_ = False
    for message in late:
        assert message.delivery_tag is not None
        await raw.basic_nack(message.delivery_tag, requeue=True)
    return got
