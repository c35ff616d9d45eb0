"""Dead letters with our Q2 headers (emulated: RabbitMQ's own dead-lettering
cannot add them). A message is republished to the dead-letter queue, the
publish confirmed, and only then acked where it was; browsing, redriving and
purging read the whole dead-letter queue on a channel of their own and return
what they leave (RabbitMQ has no browse): not for a dead-letter queue that
other consumers drain at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ...config import QueueConfig
from ...message import Delivery
from . import headers as hdr
from . import topology
from .fifo import lane_of
from .leases import Lease
from .link import Link

#: How long browse/redrive/purge wait for what they gave back to be counted
#: again. Milliseconds usually; a CI run on two loaded cores once took more
#: than 2 s for 1,200 messages, and the next browse missed some.
_RETURN_WAIT_S = 10.0
Publish = Callable[[str, bytes, dict[str, Any], int], Awaitable[None]]
Ensure = Callable[[str], Awaitable[None]]


class DeadLetters:
    def __init__(self, link: Link, publish: Publish, ensure: Ensure) -> None:
        self._link = link
        self._publish = publish
        self._ensure = ensure

    async def move(
        self, config: QueueConfig, lease: Lease, reason: str, error: str, count: int
    ) -> None:
        """To ``config``'s dead-letter queue (its own ``<name>.dlq`` when none
        is configured; created if missing: never dropped), then acked."""
        message = lease.message
        dlq = config.dead_letter_queue
        await self._ensure(dlq)
        amqp = hdr.dead_letter(message.headers or {}, config.name, reason, error, count)
        await self._publish(dlq, message.body, amqp, lease.id)
        await message.ack()

    async def browse(self, config: QueueConfig, limit: int) -> list[Delivery]:
        out: list[Delivery] = []
        async with self._link.scratch() as channel:
            before = await topology.ready_count(channel, config.dead_letter_queue)
            for message in await _drain(channel, config):
                if len(out) < limit:
                    out.append(_as_delivery(config, message))
        await self._returned(config.dead_letter_queue, before)
        return out

    async def redrive(self, config: QueueConfig, ids: Sequence[int] | None) -> int:
        moved = 0
        async with self._link.scratch() as channel:
            before = await topology.ready_count(channel, config.dead_letter_queue)
            for message in await _drain(channel, config):
                if ids is None or _id(message) in ids:
                    amqp = hdr.redriven(message.headers or {})
                    await self._publish(_home(config, amqp), message.body, amqp, _id(message))
                    await message.ack()
                    moved += 1
        await self._returned(config.dead_letter_queue, before - moved)
        return moved

    async def purge(self, config: QueueConfig, ids: Sequence[int] | None) -> int:
        dropped = 0
        async with self._link.scratch() as channel:
            before = await topology.ready_count(channel, config.dead_letter_queue)
            for message in await _drain(channel, config):
                if ids is None or _id(message) in ids:
                    await message.ack()
                    dropped += 1
        await self._returned(config.dead_letter_queue, before - dropped)
        return dropped

    async def _returned(self, dlq: str, at_least: int) -> None:
        """The messages a closed channel gave back are counted by RabbitMQ a
        moment later: wait for them (at most 10 s), so stats and the next
        browse right after this call see them again."""
        deadline = asyncio.get_running_loop().time() + _RETURN_WAIT_S
        async with self._link.scratch() as channel:
            while await topology.ready_count(channel, dlq) < at_least:
                if asyncio.get_running_loop().time() > deadline:
                    return  # others may be draining it: do not wait for ever
                await asyncio.sleep(0.01)


async def _drain(channel: Any, config: QueueConfig) -> list[AbstractIncomingMessage]:
    """Every message now in the dead-letter queue that came from ``config``'s
    queue, leased on ``channel`` (the rest too: closing the channel returns them)."""
    dlq = await channel.declare_queue(config.dead_letter_queue, passive=True)
    mine: list[AbstractIncomingMessage] = []
    while (message := await dlq.get(no_ack=False, fail=False)) is not None:
        if hdr.origin(message.headers or {}) == config.name:
            mine.append(message)
    mine.sort(key=lambda m: hdr.dead_letter_order(m.headers or {}))
    return mine


def _home(config: QueueConfig, amqp: dict[str, Any]) -> str:
    """Where a redriven message goes: its FIFO group's lane, else the queue."""
    group = hdr.group(amqp)
    return lane_of(config.name, group) if config.fifo and group is not None else config.name


def _id(message: AbstractIncomingMessage) -> int:
    return int(message.message_id or 0)


def _as_delivery(config: QueueConfig, message: AbstractIncomingMessage) -> Delivery:
    amqp = message.headers or {}
    count = int(hdr.visible(amqp).get("x-delivery-count", "0") or 0)
    return Delivery(
        config.dead_letter_queue, _id(message), message.body, hdr.visible(amqp), count, False, "", 0
    )
