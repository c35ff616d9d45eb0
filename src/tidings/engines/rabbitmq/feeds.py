"""Feeds: a standing consumer per queue on the main channel, whose pushed
deliveries wait in a buffer until a claim takes them (issue 12).

Why: a consumer per claim cost two Raft rounds per claim on a quorum queue
(basic.consume registers a checkout, basic.cancel removes it) and started
each batch's deliveries from cold: get+ack ran at 0.3-0.5 of a raw aio-pika
consumer. A standing consumer is what a raw client runs.

How a claim of ``want`` goes: it takes what the feed buffered; short of
``want``, it uses the feed if the feed has room for the rest (prefetch minus
the messages it holds, buffered or leased). Else it first takes what the
feed's room brings, and once the feed is full and the queue still has
messages ready, replaces it by one with prefetch twice the rest: while the
application works on one batch, the next streams in. It waits for
deliveries only while they can be on their way: up to ``SETTLE_S`` after the
feed started or room was made (a settle, a publish from this engine); a feed
that had room for longer than that got everything the queue had for it.
Once deliveries flow, it waits for the next while they keep coming
(``GAP_S``), up to ``want``.

Cancelling a consumer is where counts can go wrong: a quorum queue returns,
*counted*, every delivery that reaches the channel after the cancel
(rabbit_fifo_client drops the consumer's tag first, then returns what
arrives for it: rabbitmq-server issue 3729). A consumer with room may have
deliveries on their way at any moment (an ack just made room, a message was
just published), so a feed cancels only when nothing can be on its way:

* when it is *full* (it holds its whole prefetch: RabbitMQ has no credit to
  send it anything), checked and cancelled under the channel's settle gate
  (pushed.py), so no ack makes room in between. This is exact: how a feed
  is replaced, and how it stops while its queue has messages ready;
* else when *quiet*: nothing arrived, no room made, nothing of this engine's
  expected for ``QUIET_S``. A message another client publishes in the few
  milliseconds of the cancel itself still comes back counted; a feed that
  is neither full nor quiet after ``STOP_WAIT_S`` cancels anyway.

A delivery that still reaches a stopped feed is given back like its buffer.

Bounds and contracts:

* Prefetch bounded: one feed per queue; its prefetch is twice the claim
  size that opened it (1 for a claim of one: ``prefetch_for``). Leased and
  buffered messages together never pass it (a new feed opens only when the
  old one's buffer is empty; cancelling a consumer leaves its leased
  messages leased, and they count against no feed any more).
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

from .pushed import Pushed, gate

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
#: A feed that is not full stops once nothing arrived and no room was made
#: for this long (deliveries an ack caused have arrived by then)...
QUIET_S = 0.1
#: ... or after this long anyway.
STOP_WAIT_S = 1.0

ReadyCount = Callable[[AbstractChannel, str], Awaitable[int]]
GiveBack = Callable[[str, list[Pushed]], Awaitable[None]]
Late = Callable[["Feed", Pushed], None]


def prefetch_for(want: int, rest: int) -> int:
    """The prefetch of a feed opened for a claim of ``want``, ``rest`` of
    which it must bring. A claim of one gets no buffer beside it: a process
    that dies returns its buffer counted, and claiming one at a time is how a
    consumer makes only a suspect message count its deaths (the runtime's
    careful mode, runtime/queues.py)."""
    return 1 if want == 1 else rest * PREFETCH_PER_CLAIMED


class Feed:
    """A consumer on one queue with prefetch ``prefetch``; its buffer."""

    def __init__(self, raw: RawChannel, queue: str, prefetch: int, late: Late) -> None:
        self.raw = raw
        self.queue = queue
        self.prefetch = prefetch
        self.buffer: deque[Pushed] = deque()
        self.held = 0  # delivered and not settled: buffered or leased
        self.arrived = asyncio.Event()
        self.tag: str | None = None
        self.stopped = False  # cancelled and its buffer taken: deliveries go to ``late``
        self._late = late
        self.used = self.room_made = self.last_arrival = time.monotonic()
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
        self.last_arrival = time.monotonic()
        delivery = Pushed(message, self._settled)
        if self.stopped:  # no claim reads this buffer any more
            self._late(self, delivery)
            return
        self.buffer.append(delivery)
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

    def full(self) -> bool:
        """Whether RabbitMQ can send this consumer nothing more (no credit)."""
        return self.room() <= 0

    def quiet(self) -> bool:
        """Whether nothing arrived, no room was made and nothing of ours was
        expected for QUIET_S (so, most likely, nothing is on its way)."""
        now = time.monotonic()
        if self.expected > 0 and now < self.expect_until:
            return False
        return now - max(self.room_made, self.last_arrival) >= QUIET_S

    async def cancel_if_full(self) -> bool:
        """Cancel the consumer if it is full and its buffer empty (nothing
        can be on its way to it); whether it did."""
        async with gate(self.raw):  # no settle makes room between check and cancel
            if not self.full() or self.buffer or self.tag is None or self.raw.is_closed:
                return False
            await self._cancel()
        return True

    async def stop(self) -> list[Pushed]:
        """Cancel the consumer once nothing can be on its way (see the module
        docstring); what it buffered (the channel keeps those unacked until
        they are settled; leased ones stay leased)."""
        give_up = time.monotonic() + STOP_WAIT_S
        while self.tag is not None and not self.raw.is_closed:
            async with gate(self.raw):
                if self.full() or self.quiet() or time.monotonic() >= give_up:
                    await self._cancel()
                    break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), QUIET_S / 4)
            except TimeoutError:
                pass
        self.tag = None
        self.stopped = True
        left = list(self.buffer)
        self.buffer.clear()
        return left

    async def _cancel(self) -> None:
        tag, self.tag = self.tag, None
        assert tag is not None
        await self.raw.basic_cancel(tag)
        await asyncio.sleep(0)  # deliveries before the CancelOk run their callbacks first

    def pop(self, want: int) -> list[Pushed]:
        self.used = time.monotonic()
        return [self.buffer.popleft() for _ in range(min(want, len(self.buffer)))]

    async def first(self) -> None:
        """Until something is buffered, or SETTLE_S after room was made."""
        while not self.buffer and not self.full():
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
        if feed is not None and feed.room() < rest:
            out += await self._drain(feed, rest)
            rest = want - len(out)
            if rest == 0 or not await self._replace(channel, feed):
                return out
            feed = None
        if feed is None:
            ready = await self._ready_count(channel, queue)
            if ready == 0:
                return out
            feed = await self._open(raw, queue, prefetch_for(want, rest), min(ready, rest))
        elif not feed.expecting():
            return out
        await feed.first()
        await feed.fill(rest)
        return out + feed.pop(rest)

    @staticmethod
    async def _drain(feed: Feed, rest: int) -> list[Pushed]:
        """What the feed's room brings (fewer than ``rest``)."""
        if feed.expecting():
            await feed.first()
            await feed.fill(rest)
        return feed.pop(rest)

    async def _replace(self, channel: AbstractChannel, feed: Feed) -> bool:
        """Cancel a feed too small for the claims made of it, if it is full
        (so the cancel counts nothing) and the queue has more ready; whether
        it did. A feed that is not full got all the queue had for it."""
        if not feed.full() or await self._ready_count(channel, feed.queue) == 0:
            return False
        if not await feed.cancel_if_full():
            return False
        if self._feeds.get(feed.queue) is feed:
            del self._feeds[feed.queue]
        await feed.stop()  # its buffer is empty: nothing to give back
        return True

    async def _open(self, raw: RawChannel, queue: str, prefetch: int, ready: int) -> Feed:
        """A new feed, started; ``ready`` of the queue's messages are pushed
        to it unless another consumer takes them first, so a claim waits for
        them as for this engine's own publishes (expected before the
        consumer starts: each arrival counts one off), not only until a gap
        in the flow (a push paused longer than GAP_S on a loaded machine,
        and a claim of 120 with 301 ready got fewer)."""
        feed = Feed(raw, queue, prefetch, self._late)
        feed.expect(ready)
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
        await asyncio.gather(*(self.stop(queue) for queue in list(self._feeds)))

    def _late(self, feed: Feed, delivery: Pushed) -> None:
        """A delivery that reached ``feed`` after it stopped: given back."""
        if not feed.raw.is_closed:
            self._hold(asyncio.ensure_future(self._give_back(feed.queue, [delivery])))

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
