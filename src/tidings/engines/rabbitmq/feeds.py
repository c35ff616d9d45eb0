"""Feeds: a standing consumer per queue on the main channel, whose pushed
deliveries wait in a buffer until a claim takes them (issue 12).

Why: a consumer per claim cost two Raft rounds per claim on a quorum queue
(basic.consume registers a checkout, basic.cancel removes it) and started
each batch's deliveries from cold: get+ack ran at 0.3-0.5 of a raw aio-pika
consumer. A standing consumer is what a raw client runs.

How a claim of ``want`` goes: it takes what the feed buffered; short of
``want``, it uses the feed if the feed has room for the rest (prefetch minus
the messages it holds, buffered or leased), else replaces it by one with
prefetch twice the rest (after a passive declare says messages are ready):
while the application works on one batch, the next streams in. It
waits for deliveries only while they can be on their way: up to ``SETTLE_S``
after the feed started or room was made (a settle, a publish from this
engine); a feed that had room for longer than that got everything the queue
had for it. Once deliveries flow, it waits for the next while they keep
coming (``GAP_S``), up to ``want``.

Bounds and contracts:

* Prefetch bounded: one feed per queue; its prefetch is twice the claim
  size that opened it. Leased and buffered messages together never pass it
  (a new feed opens only when the old one's buffer is empty; cancelling a
  consumer leaves its leased messages leased, and they count against no
  feed any more).
* Q1: a buffered message is not leased: its lease (and timer) starts when a
  claim hands it out. A delivery handed out and not acked is returned by its
  lease timer, or by RabbitMQ when the channel closes.
* Delivery counts: a buffered message was never delivered to the
  application. A feed left idle for ``IDLE_S`` or closed gives its buffer
  back by republishing each message with its count carried
  (``x-tidings-deliveries``), confirmed, then acking it: a nack would add one
  to ``x-delivery-count``. Those messages go to the queue's tail. If the
  process dies, RabbitMQ returns the buffer itself and counts one delivery
  more for each buffered message (at most the prefetch).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from .pushed import Pushed

#: How long deliveries may take to arrive once room was made for them.
SETTLE_S = 0.05
#: How long a claim waits for messages this engine itself sent to the queue
#: (its publishes, its nacks): RabbitMQ pushes them to this feed if it has
#: room, unless another consumer takes them first.
EXPECT_S = 1.0
#: Once deliveries flow, a claim short of its size waits this long for the
#: next one before it returns what it has.
GAP_S = 0.001
#: A feed's prefetch, per message its opening claim asked for: room for the
#: next claim's batch to stream in while the application works on this one.
PREFETCH_PER_CLAIMED = 2
#: A feed with no claim for this long gives its buffer back and stops.
IDLE_S = 5.0

ReadyCount = Callable[[AbstractChannel, str], Awaitable[int]]
GiveBack = Callable[[str, list[Pushed]], Awaitable[None]]


class Feed:
    """A consumer on one queue with prefetch ``prefetch``; its buffer."""

    def __init__(self, raw: RawChannel, queue: str, prefetch: int) -> None:
        self.raw = raw
        self.queue = queue
        self.prefetch = prefetch
        self.buffer: deque[Pushed] = deque()
        self.held = 0  # delivered and not settled: buffered or leased
        self.arrived = asyncio.Event()
        self.tag: str | None = None
        self.used = self.room_made = time.monotonic()
        self.expected = 0  # messages this engine sent to the queue, not seen yet
        self.expect_until = 0.0

    async def start(self) -> None:
        await self.raw.basic_qos(prefetch_count=self.prefetch, global_=False)
        ok = await self.raw.basic_consume(self.queue, self._deliver, no_ack=False)
        self.tag = ok.consumer_tag
        self.room_made = time.monotonic()

    async def _deliver(self, message: DeliveredMessage) -> None:
        self.expected = max(0, self.expected - 1)
        self.held += 1
        self.buffer.append(Pushed(message, self._settled))
        self.arrived.set()

    def _settled(self, requeued: bool) -> None:
        self.held -= 1
        self.room_made = time.monotonic()
        if requeued:
            self.expect(1)

    def expect(self, n: int) -> None:
        """``n`` messages were sent to the queue by this engine."""
        self.expected += n
        self.expect_until = time.monotonic() + EXPECT_S

    def _deadline(self) -> float:
        """Until when deliveries may still be on their way to this feed."""
        deadline = self.room_made + SETTLE_S
        if self.expected > 0:
            deadline = max(deadline, self.expect_until)
        return deadline

    @property
    def live(self) -> bool:
        return self.tag is not None and not self.raw.is_closed

    def room(self) -> int:
        return self.prefetch - self.held

    def expecting(self) -> bool:
        """Whether deliveries may be on their way (room made lately)."""
        return self.room() > 0 and time.monotonic() < self._deadline()

    async def stop(self) -> list[Pushed]:
        """Cancel the consumer; what it buffered (the channel keeps those
        unacked until they are settled; leased ones stay leased)."""
        if self.tag is not None and not self.raw.is_closed:
            tag, self.tag = self.tag, None
            await self.raw.basic_cancel(tag)
            await asyncio.sleep(0)  # deliveries before the CancelOk run their callbacks first
        self.tag = None
        left = list(self.buffer)
        self.buffer.clear()
        return left

    def pop(self, want: int) -> list[Pushed]:
        self.used = time.monotonic()
        return [self.buffer.popleft() for _ in range(min(want, len(self.buffer)))]

    async def first(self) -> None:
        """Until something is buffered, or SETTLE_S after room was made."""
        while not self.buffer:
            left = self._deadline() - time.monotonic()
            if left <= 0:
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                return

    async def fill(self, want: int) -> None:
        """Until ``want`` are buffered or deliveries pause for GAP_S."""
        while len(self.buffer) < want and self.room() > 0:
            self.arrived.clear()
            wait = GAP_S
            if self.expected > 0:  # ours are coming: wait for them, not for a gap
                wait = max(GAP_S, self.expect_until - time.monotonic())
            try:
                await asyncio.wait_for(self.arrived.wait(), wait)
            except TimeoutError:
                return


class Feeds:
    """The feeds of one engine instance, by queue."""

    def __init__(self, ready_count: ReadyCount, give_back: GiveBack) -> None:
        self._feeds: dict[str, Feed] = {}
        self._ready_count = ready_count
        self._give_back = give_back
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    async def take(
        self, channel: AbstractChannel, queue: str, want: int
    ) -> list[Pushed]:
        """Up to ``want`` of ``queue``'s messages, not yet leased."""
        raw = await channel.get_underlay_channel()
        feed = self._feeds.get(queue)
        if feed is not None and (feed.raw is not raw or not feed.live):
            await self.stop(queue)
            feed = None
        out = feed.pop(want) if feed is not None else []
        rest = want - len(out)
        if rest == 0:
            return out
        if feed is None or feed.room() < rest:
            if feed is not None:
                await self.stop(queue)  # its buffer is empty: nothing to give back
            if await self._ready_count(channel, queue) == 0:
                return out
            feed = await self._open(raw, queue, rest * PREFETCH_PER_CLAIMED)
        elif not feed.expecting():
            return out
        await feed.first()
        await feed.fill(rest)
        return out + feed.pop(rest)

    async def _open(self, raw: RawChannel, queue: str, prefetch: int) -> Feed:
        feed = Feed(raw, queue, prefetch)
        self._feeds[queue] = feed
        await feed.start()
        self._arm()
        return feed

    def published(self, queue: str, n: int) -> None:
        """This engine published ``n`` to ``queue``: its feed may get them."""
        feed = self._feeds.get(queue)
        if feed is not None:
            feed.expect(n)

    async def stop(self, queue: str) -> None:
        """Stop ``queue``'s feed and give its buffer back (counts carried)."""
        feed = self._feeds.pop(queue, None)
        if feed is None:
            return
        left = await feed.stop()
        if left and not feed.raw.is_closed:
            await self._give_back(queue, left)

    async def discard(self, queue: str) -> list[Pushed]:
        """Stop ``queue``'s feed; its buffer is the caller's (purge, delete)."""
        feed = self._feeds.pop(queue, None)
        return [] if feed is None else await feed.stop()

    def buffered(self, queue: str) -> int:
        feed = self._feeds.get(queue)
        return 0 if feed is None else len(feed.buffer)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for queue in list(self._feeds):
            await self.stop(queue)

    def _hold(self, task: asyncio.Future[Any]) -> None:
        """Keep ``task`` referenced until done (the loop holds it weakly)."""
        self._tasks.add(task)
        task.add_done_callback(_forget(self._tasks))

    def _arm(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(IDLE_S, self._sweep)

    def _sweep(self) -> None:
        """Stop the feeds no claim used for IDLE_S (in a task: stopping talks
        to RabbitMQ)."""
        self._sweeper = None
        now = time.monotonic()
        for queue, feed in list(self._feeds.items()):
            if now - feed.used >= IDLE_S:
                self._hold(asyncio.ensure_future(self.stop(queue)))
        if self._feeds:
            self._arm()


def _forget(tasks: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed give-back was returned by RabbitMQ anyway

    return done
