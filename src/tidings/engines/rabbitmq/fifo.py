"""FIFO groups (Q4), emulated on lanes.

A FIFO queue's grouped messages go to one of ``LANES`` quorum queues beside
it, ``NAME.tidings-fifo.N``, N = crc32(group) mod LANES (the same in every
process and version); messages without a group go to the queue itself and
flow freely. A lane has at most one message in flight across all
processes: a claim takes a lane's head only while holding the lane's token,
an exclusive queue (lock.py) held until the lease ends (ack, nack, reject,
expiry; a process that dies loses its connection, so RabbitMQ drops the
token and returns the message).

A lane's head is taken on a channel of its own, and given back (nack,
expiry) by closing that channel: RabbitMQ 3.10 puts a message returned by
basic.nack or basic.reject behind the others in a quorum queue, but one
returned by a closed channel back at the head (measured), counted in
x-delivery-count either way. So a group's order holds through nacks,
expiries and crashes.

Limits: groups that share a lane wait for each other (at most ``LANES``
groups in flight per queue); a nack with a delay holds the message and its
lane until due (RabbitMQ returns it early if the process dies); a claim
costs a round trip per lane; ``max_length`` is refused (it would apply per
lane). ``release`` keeps the message and the lane, and the next claim here
hands it out again uncounted (given back, counted, if none comes within
the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from ...config import QueueConfig
from ...errors import UnsupportedFeature
from ...message import Delivery
from . import headers as hdr
from . import topology
from .leases import Lease
from .link import Link
from .lock import Locks
from .pushed import Pushed

LANES = 8
LANE_INFIX = hdr.LANE_INFIX

LeaseFn = Callable[[QueueConfig, Pushed], Awaitable[Delivery | None]]
Relend = Callable[[QueueConfig, Lease], Delivery]


def lane_of(queue: str, group: str) -> str:
    return topology.companion(queue, f"{LANE_INFIX}{zlib.crc32(group.encode()) % LANES}")


def lanes(queue: str) -> list[str]:
    return [topology.companion(queue, f"{LANE_INFIX}{n}") for n in range(LANES)]


def check_config(config: QueueConfig) -> None:
    if config.fifo and config.max_length is not None:
        raise UnsupportedFeature(
            "the amqp:// engine cannot bound a FIFO queue's length (its groups are spread "
            "over lanes): declare it without max_length, or without fifo"
        )


async def declare_lanes(link: Link, config: QueueConfig) -> None:
    async with link.scratch() as channel:
        for lane in lanes(config.name):
            await topology.declare(channel, lane, topology.arguments(config))


def lane_of_lease(lease: Lease) -> str | None:
    """The lane a leased message was taken from (its routing key: lane
    messages are published, and dead-lettered back from delay queues, under
    the lane's name), or None for one from the queue itself."""
    key = lease.message.routing_key or ""
    return key if LANE_INFIX in key and key in lanes(lease.queue) else None


def _settled_alone(_requeued: bool) -> None:
    """A lane head's channel is its own: no feed counts its settling."""


class Fifo:
    """The lanes this engine holds, and the released heads it keeps."""

    def __init__(self, link: Link, locks: Locks) -> None:
        self._link = link
        self._locks = locks
        self._held: dict[str, contextlib.AsyncExitStack] = {}  # lane -> its channel
        self._parked: dict[str, tuple[Lease, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._generation = 0

    async def claim(
        self, config: QueueConfig, want: int, lease: LeaseFn, relend: Relend
    ) -> list[Delivery]:
        """Up to ``want`` lane heads, at most one per lane."""
        await self._forget_after_reconnect()
        out: list[Delivery] = []
        mine = lanes(config.name)
        for lane in [lane for lane in self._parked if lane in mine][:want]:
            parked, timer = self._parked.pop(lane)
            timer.cancel()
            out.append(relend(config, parked))
        for lane in await self._ready_lanes(config):
            if len(out) >= want:
                break
            if got := await self._head(config, lane, lease):
                out.append(got)
        return out

    async def _ready_lanes(self, config: QueueConfig) -> list[str]:
        """Lanes with a message ready that this engine does not hold (one
        channel for all the counts)."""
        free = [lane for lane in lanes(config.name) if lane not in self._held]
        async with self._link.scratch() as channel:
            return [lane for lane in free if await topology.ready_count(channel, lane) > 0]

    async def _head(self, config: QueueConfig, lane: str, lease: LeaseFn) -> Delivery | None:
        if not await self._locks.try_acquire(lane):
            return None  # another process has this lane's head in flight
        self._held[lane] = stack = contextlib.AsyncExitStack()
        try:
            channel = await stack.enter_async_context(self._link.scratch())
            got = await (await channel.get_underlay_channel()).basic_get(lane, no_ack=False)
            # GetEmpty carries no delivery tag; the lane channel settles alone.
            message = None if got.delivery_tag is None else Pushed(got, _settled_alone)
            delivery = None if message is None else await lease(config, message)
        except BaseException:
            await self.free(lane)
            raise
        if delivery is None:  # empty after all, or dead-lettered at its last delivery
            await self.free(lane)
        return delivery

    async def free(self, lane: str | None) -> None:
        """The lane's head was settled, or is given back: its channel closes
        (returning it to the head if unacked), then the next one may go."""
        if lane is None or (stack := self._held.pop(lane, None)) is None:
            return
        try:
            await stack.aclose()
        finally:
            await self._locks.release(lane)

    def park(
        self, lease: Lease, lane: str, lease_s: float, give_back: Callable[[Lease], Any]
    ) -> None:
        """A released head stays leased here for the next claim (uncounted)."""

        def expire() -> None:
            if self._parked.pop(lane, None) is not None:
                give_back(lease)

        timer = asyncio.get_running_loop().call_later(lease_s, expire)
        self._parked[lane] = (lease, timer)

    def hold(self, lease: Lease, lane: str, delay_s: float) -> None:
        """A nack with a delay: the head and its lane wait, then it returns."""

        async def later() -> None:
            await asyncio.sleep(delay_s)
            with contextlib.suppress(Exception):  # the connection is gone: returned already
                await self.free(lane)

        task = asyncio.ensure_future(later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def drop(self, queue: str) -> None:
        """The queue was deleted or purged: its parked heads go with it."""
        for lane in lanes(queue):
            entry = self._parked.pop(lane, None)
            if entry is not None:
                entry[1].cancel()

    async def _forget_after_reconnect(self) -> None:
        """A new main channel: RabbitMQ returned the messages leased on the
        old one, so their lanes are free again (the tokens went with the
        connection if it dropped; deleted here if it did not)."""
        if self._link.generation == self._generation:
            return
        self._generation = self._link.generation
        for _, timer in self._parked.values():
            timer.cancel()
        self._parked.clear()
        for lane in sorted(self._held):
            with contextlib.suppress(Exception):  # another connection may own it now
                await self.free(lane)
            self._held.pop(lane, None)
