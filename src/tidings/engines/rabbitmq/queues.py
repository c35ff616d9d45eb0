"""The queue side on RabbitMQ quorum queues (contracts Q1-Q6).

Native: storage and replication (quorum queues), publisher confirms,
per-message ack, redelivery counts (``x-delivery-count``), TTL and max
length (``x-message-ttl``, ``x-max-length`` with ``reject-publish`` or
``drop-head``), exchange routing (exchanges.py). Emulated: leases (a timer
returns the message), max deliveries and reject (republished to the
dead-letter queue with our Q2 headers, then acked), delays (durable
per-delay queues), dead-letter browsing (read and returned), release
(republished uncounted), dedup (dedup.py), FIFO groups (fifo.py).
Topic bindings and listing queues raise UnsupportedFeature.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiormq

from ...backoff import Backoff
from ...config import QueueConfig
from ...errors import (
    AlreadyExists,
    ConfigurationError,
    LeaseLost,
    QueueNotFound,
    TidingsError,
    UnsupportedFeature,
)
from ...message import Delivery, QueueStats
from ...ports.queue import OutgoingMessage, Settlement
from . import headers as hdr
from . import pushed, topology
from .awaited import AwaitedQueues
from .checks import dead_letters_natively, last, stored_in, uncounted
from .deadletters import DeadLetters
from .dedup import Dedup, stream_name
from .exchanges import NO_TOPIC_BINDINGS, RabbitExchanges
from .feeds import Feeds
from .fifo import Fifo, check_config, declare_lanes, lane_of_lease, lanes
from .leases import Lease, Leases
from .link import DROPPED, Dropped, Link
from .lock import Locks
from .portal import Portal
from .publishing import QueuePublishing, new_id
from .refusals import check_body_limit


class RabbitQueues(QueuePublishing, AwaitedQueues):
    """Implements QueueEngine, LeaseExtension and DeadLetterAdmin (emulated);
    publishing's inner steps are in publishing.py."""

    def __init__(self, portal: Portal, link: Link, timeout_s: float, poll_s: float) -> None:
        self._portal = portal
        self._poll_s = poll_s  # how often a waiting claim asks again
        self._link = link
        self._timeout = timeout_s
        self._configs: dict[str, QueueConfig] = {}
        self._delays: dict[str, set[str]] = {}
        self._leases = Leases(self._on_expiry)
        self._tasks: set[asyncio.Future[None]] = set()
        self._claiming = asyncio.Lock()
        self._dead = DeadLetters(link, self._publish_one, self._ensure)
        link.on_reopen(lambda: topology.redeclare(link, list(self._configs.values())))
        locks = Locks(link)
        self._exchanges = RabbitExchanges(link, locks, self._require, self._prepare, timeout_s)
        self._dedup = Dedup(link, locks, timeout_s)
        self._fifo = Fifo(link, locks)
        self._feeds = Feeds(topology.ready_count, self._unclaimed)

    def _call(self, coro: Any) -> Any:
        return self._portal.call(self._link.guard(coro), self._timeout)

    # ---- declaration --------------------------------------------------------
    def declare(self, config: QueueConfig) -> QueueConfig:
        return self._call(self._declare(config))  # type: ignore[no-any-return]

    async def _declare(self, config: QueueConfig) -> QueueConfig:
        check_config(config)
        check_body_limit(config.max_body_bytes)
        await self._refuse_loop(config)
        existing = await topology.read_config(self._link, config.name)
        if existing is not None:
            if existing != config:
                raise AlreadyExists(
                    f"queue {config.name!r} exists with other settings ({existing}); "
                    "delete it first or declare it with the same settings"
                )
            self._configs[config.name] = existing
            return existing
        if config.dead_letter is not None or dead_letters_natively(config):
            # RabbitMQ's own dead-lettering (TTL, delivery limit, overflow)
            # drops what it cannot route: the dead-letter queue must exist first.
            await self._ensure(config.dead_letter_queue)
        await topology.create(self._link, config)
        if config.fifo:
            try:
                await declare_lanes(self._link, config)
            except BaseException:  # nothing half-declared: the queue goes too
                await topology.remove(self._link, config.name, lanes(config.name))
                raise
        self._configs[config.name] = config
        return config

    async def _ensure(self, name: str) -> None:
        """Create ``name`` as a plain queue unless it exists (a dead-letter
        queue: implicit ``<name>.dlq``, or a configured one deleted since)."""
        if await self._config(name) is None:
            await topology.create(self._link, QueueConfig(name))
            self._configs[name] = QueueConfig(name)

    async def _refuse_loop(self, config: QueueConfig) -> None:
        """Follow the dead-letter chain (implicit ``<name>.dlq`` queues too,
        as far as they exist); reaching this queue again would loop."""
        seen = [config.name]
        nxt: str | None = config.dead_letter_queue
        while nxt is not None:
            if nxt in seen:
                raise ConfigurationError(
                    f"dead-letter chain {' -> '.join([*seen, nxt])} loops back; "
                    f"choose a dead-letter queue that does not lead to {config.name!r}"
                )
            seen.append(nxt)
            found = await self._config(nxt)
            nxt = found.dead_letter_queue if found else None

    async def _config(self, name: str) -> QueueConfig | None:
        if name not in self._configs:
            found = await topology.read_config(self._link, name)
            if found is None:
                return None
            self._configs[name] = found
        return self._configs[name]

    async def _require(self, name: str) -> QueueConfig:
        config = await self._config(name)
        if config is None:
            raise QueueNotFound(f"queue {name!r} does not exist: declare it first")
        return config

    def get_queue(self, name: str) -> QueueConfig:
        return self._call(self._require(name))  # type: ignore[no-any-return]

    def list_queues(self) -> list[QueueConfig]:
        raise UnsupportedFeature(
            "the amqp:// engine cannot list queues (AMQP has no listing; the management "
            "API is not used): look a queue up by name with get_queue"
        )

    def delete(self, name: str) -> None:
        self._call(self._delete(name))

    async def _delete(self, name: str) -> None:
        await self._require(name)
        for receipt in self._leases.of_queue(name):
            lease = self._leases.end(receipt, "expired")
            if lease is not None:
                lease.message.forget()
        for message in await self._feeds.discard(name):  # deleted with the queue
            message.forget()
        delays = sorted(self._delays.pop(name, set()))
        await topology.remove(self._link, name, [*delays, stream_name(name), *lanes(name)])
        self._dedup.forget(name)
        self._fifo.drop(name)
        self._configs.pop(name, None)

    def purge(self, name: str) -> int:
        return self._call(self._purge(name))  # type: ignore[no-any-return]

    async def _purge(self, name: str) -> int:
        config = await self._require(name)
        self._fifo.drop(name)
        held = 0
        for receipt in self._leases.of_queue(name):
            lease = self._leases.end(receipt, "expired")
            if lease is not None and await self._try(lease.message.ack()):
                held += 1
                await self._fifo.free(lane_of_lease(lease))
        for message in await self._feeds.discard(name):
            held += await self._try(message.ack())
        async with self._link.scratch() as channel:
            for queue in stored_in(config):
                result = await (await channel.declare_queue(queue, passive=True)).purge()
                held += int(result.message_count or 0)
        return held

    def stats(self, name: str) -> QueueStats:
        return self._call(self._stats(name))  # type: ignore[no-any-return]

    async def _stats(self, name: str) -> QueueStats:
        """``leased`` counts this engine instance's leases only; ``delayed``
        the delay queues it used; ``dead_lettered`` the whole dead-letter queue."""
        config = await self._require(name)
        ready = sum([await self._count(queue) for queue in stored_in(config)])
        ready += self._feeds.buffered(name)
        delayed = 0
        for queue in sorted(self._delays.get(name, set())):
            delayed += await self._count(queue)
        dead = await self._count(config.dead_letter_queue)
        return QueueStats(name, ready, len(self._leases.of_queue(name)), delayed, dead)

    async def _count(self, queue: str) -> int:
        """Messages ready in ``queue``; 0 if it does not exist (any more)."""
        try:
            async with self._link.scratch() as channel:
                return await topology.ready_count(channel, queue)
        except QueueNotFound:
            return 0

    # ---- publishing ---------------------------------------------------------
    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]:
        """Each message confirmed by RabbitMQ before this returns. Not atomic
        across a batch: a failure part-way leaves the confirmed ones stored."""
        return self._call(self._publish(queue, messages))  # type: ignore[no-any-return]

    # ---- consuming ----------------------------------------------------------
    def claim(self, queue: str, max_messages: int) -> list[Delivery]:
        """Claimed again after a drop (what it had taken went back with the
        channel), for up to reconnect_timeout: a basic.get while a quorum
        queue elects a leader closes the connection (INTERNAL_ERROR nodedown)."""
        deadline = time.monotonic() + self._link.reconnect_s
        backoff = Backoff(0.05, 1.0)
        while True:
            try:
                return self._call(self._claim(queue, max_messages))  # type: ignore[no-any-return]
            except Dropped:
                if time.monotonic() > deadline:
                    raise
                time.sleep(backoff.next())

    async def _claim(self, queue: str, max_messages: int) -> list[Delivery]:
        config = await self._require(queue)
        async with self._claiming:  # one consumer's prefetch at a time on the channel
            channel = await self._link.channel()
            self._leases.drop_generation_before(self._link.generation)
            out: list[Delivery] = []
            if config.fifo:  # lane heads first, then the ungrouped messages
                out += await self._fifo.claim(config, max_messages, self._lease, self._relend)
            while len(out) < max_messages:
                want = max_messages - len(out)
                messages = await self._feeds.take(channel, queue, want)
                for message in messages:
                    delivery = await self._lease(config, message)
                    if delivery is not None:
                        out.append(delivery)
                if len(messages) < want:  # took what there was
                    break
            return out

    async def _unclaimed(self, queue: str, messages: list[pushed.Pushed]) -> None:
        """Give back messages a feed buffered but no claim took: republished
        with their delivery count carried, then acked (feeds.py says why)."""
        sends = []
        for m in messages:
            amqp = hdr.carried(m.headers or {})
            amqp[hdr.PRIOR] = hdr.deliveries(m.headers or {}) - 1
            id = int(m.message_id or str(amqp.get(hdr.ID, "0")))
            sends.append(self._publish_one(queue, m.body, amqp, id))
        await asyncio.gather(*sends)
        for m in messages:
            await self._try(m.ack())

    async def _lease(
        self, config: QueueConfig, message: pushed.Pushed
    ) -> Delivery | None:
        amqp = message.headers
        count = hdr.deliveries(amqp)
        id = int(message.message_id or str(amqp.get(hdr.ID, "0")))
        lease = Lease(config.name, id, message, count, self._link.generation, 0)
        if config.max_deliveries is not None and count > config.max_deliveries:
            # Returned by RabbitMQ (a consumer died) after its last delivery.
            await self._dead.move(config, lease, "max_deliveries", "", count - 1)
            return None
        return self._relend(config, lease)

    def _relend(self, config: QueueConfig, lease: Lease) -> Delivery:
        """A lease on ``lease``'s message (again, for a released FIFO head)."""
        receipt = self._leases.add(lease, config.lease_s)
        amqp = lease.message.headers or {}
        return Delivery(
            config.name, lease.id, lease.message.body, hdr.visible(amqp), lease.count,
            lease.count > 1, receipt, lease.until_ms, hdr.group(amqp),
        )

    def _on_expiry(self, lease: Lease) -> None:
        task = asyncio.ensure_future(self._give_back(lease))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, lease: Lease) -> None:
        config = self._configs.get(lease.queue)
        if config is not None and last(config, lease):
            # A dropped channel makes RabbitMQ return the message anyway (counted),
            # and the next claim dead-letters it: nothing to do on failure.
            await self._try(
                self._dead.move(config, lease, "max_deliveries", "lease expired", lease.count)
            )
        elif lane_of_lease(lease) is None:  # a lane's head returns when the lane is freed
            await self._try(lease.message.nack(requeue=True))
        await self._try(self._fifo.free(lane_of_lease(lease)))

    def settle(self, queue: str, settlements: Sequence[Settlement]) -> list[BaseException | None]:
        return self._call(self._settle(queue, settlements))  # type: ignore[no-any-return]

    async def _settle(
        self, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]:
        config = await self._require(queue)
        out: list[BaseException | None] = [None] * len(settlements)
        acks: list[tuple[int, Lease]] = []
        self._leases.drop_generation_before(self._link.generation)
        for i, s in enumerate(settlements):
            try:
                lease = self._leases.take(s.receipt)
                if s.action == "ack" and lane_of_lease(lease) is None:
                    acks.append((i, lease))  # acked together below (pushed.ack)
                else:  # a FIFO lane's head also frees its lane
                    await self._settle_one(config, s, lease)
            except Exception as exc:  # per-item result, as the port says
                out[i] = exc
        await self._ack_all(acks, out)
        return out

    async def _ack_all(
        self, acks: list[tuple[int, Lease]], out: list[BaseException | None]
    ) -> None:
        """One multiple ack (or a burst of ack frames) for the batch's acks."""
        try:
            await pushed.ack([lease.message for _, lease in acks])
        except (*DROPPED, aiormq.exceptions.ChannelClosed) as exc:
            for i, _ in acks:
                lost = LeaseLost(
                    "the connection to RabbitMQ dropped while this delivery was leased; "
                    "RabbitMQ returned the message and will redeliver it"
                )
                lost.__cause__ = exc
                out[i] = lost

    async def _settle_one(self, config: QueueConfig, s: Settlement, lease: Lease) -> None:
        lane = lane_of_lease(lease)
        try:
            if lane and s.action == "nack" and s.delay_s > 0 and not last(config, lease):
                self._fifo.hold(lease, lane, s.delay_s)  # the group waits, in order
                return
            await self._end(config, lease, s)
            await self._fifo.free(lane)
        except (*DROPPED, aiormq.exceptions.ChannelClosed) as exc:
            raise LeaseLost(
                "the connection to RabbitMQ dropped while this delivery was leased; "
                "RabbitMQ returned the message and will redeliver it"
            ) from exc

    async def _end(self, config: QueueConfig, lease: Lease, s: Settlement) -> None:
        if s.action == "ack":
            await lease.message.ack()
        elif s.action == "reject":
            await self._dead.move(config, lease, "rejected", s.reason, lease.count)
        elif last(config, lease):
            await self._dead.move(config, lease, "max_deliveries", s.reason, lease.count)
        elif s.delay_s > 0:
            await self._nack_later(config, lease, s.delay_s)
        elif lane_of_lease(lease) is None:  # a lane's head returns when the lane is freed
            await lease.message.nack(requeue=True)

    async def _nack_later(self, config: QueueConfig, lease: Lease, delay_s: float) -> None:
        """Move the message to a delay queue (carrying its delivery count),
        confirmed, then ack it here: never held in this process's memory."""
        amqp = hdr.carried(lease.message.headers or {})
        amqp[hdr.PRIOR] = lease.count
        delay_ms = max(1, round(delay_s * 1000))
        await self._publish_delayed(config.name, lease.message.body, amqp, lease.id, delay_ms)
        await lease.message.ack()

    def extend(self, queue: str, id: int, receipt: str, lease_s: float) -> int:
        return self._call(self._extend(queue, receipt, lease_s))  # type: ignore[no-any-return]

    async def _extend(self, queue: str, receipt: str, lease_s: float) -> int:
        await self._require(queue)
        self._leases.drop_generation_before(self._link.generation)
        return self._leases.extend(receipt, lease_s)

    @staticmethod
    async def _try(awaitable: Any) -> bool:
        """Run an ack/nack whose channel may be gone (then RabbitMQ returned it)."""
        try:
            await awaitable
            return True
        except (*DROPPED, aiormq.exceptions.ChannelClosed, TidingsError):
            return False

    # ---- exchanges (exchanges.py) ---------------------------------------------
    def declare_exchange(self, name: str, kind: str) -> None:
        self._call(self._exchanges.declare(name, kind))

    def bind(self, exchange: str, queue: str, key: str, weight: int) -> None:
        self._call(self._exchanges.bind(exchange, queue, key, weight))

    def bind_topic(self, topic: str, queue: str) -> None:
        raise UnsupportedFeature(NO_TOPIC_BINDINGS)

    def publish_exchange(
        self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]
    ) -> dict[str, list[int]]:
        """Not atomic across a batch (each message is confirmed on its own);
        each message reaches all its queues or none (one routed publish)."""
        ids = [new_id() for _ in messages]
        publish = self._exchanges.publish(exchange, routing_key, messages, ids)
        return self._call(publish)  # type: ignore[no-any-return]

    # ---- release (emulated) -------------------------------------------------
    def release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        return self._call(self._release(queue, leases))  # type: ignore[no-any-return]

    async def _release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        """A quorum queue counts every return (nack, reject, a closed channel)
        in x-delivery-count: a released message is republished (at the tail)
        carrying its count minus this delivery, confirmed, then acked. A FIFO
        lane's head stays leased here instead, for the next claim (fifo.py)."""
        config = await self._require(queue)
        self._leases.drop_generation_before(self._link.generation)
        ended = [lease for _, r in leases if (lease := self._leases.end(r, "released"))]
        back = []
        for lease in ended:
            lane = lane_of_lease(lease)
            if lane is None:
                back.append(lease)
            else:
                self._fifo.park(lease, lane, config.lease_s, self._on_expiry)
        await asyncio.gather(*(
            self._publish_one(config.name, e.message.body, uncounted(e), e.id) for e in back
        ))
        for lease in back:
            await self._try(lease.message.ack())
        return len(ended)

    # ---- dead letters (emulated) -------------------------------------------
    def dead_letters(self, queue: str, limit: int) -> list[Delivery]:
        return self._call(self._with_dlq(queue, self._dead.browse, limit))  # type: ignore[no-any-return]

    def redrive(self, queue: str, ids: Sequence[int] | None) -> int:
        return self._call(self._with_dlq(queue, self._dead.redrive, ids))  # type: ignore[no-any-return]

    def purge_dead_letters(self, queue: str, ids: Sequence[int] | None) -> int:
        return self._call(self._with_dlq(queue, self._dead.purge, ids))  # type: ignore[no-any-return]

    async def _with_dlq(self, queue: str, fn: Any, arg: Any) -> Any:
        config = await self._require(queue)
        if await self._config(config.dead_letter_queue) is None:
            return [] if fn == self._dead.browse else 0
        return await fn(config, arg)

    def delete_declared(self) -> None:
        """Delete every queue this engine instance declared (with its catalog
        and delay queues): for tests, which must leave the server clean."""
        self._call(self._delete_declared())

    async def _delete_declared(self) -> None:
        """The queues known here and their dead-letter queues (and delay queues)."""
        await self._exchanges.delete_declared()
        names = set(self._configs)
        names.update(c.dead_letter_queue for c in list(self._configs.values()))
        for name in sorted(names):
            if await self._config(name) is not None:
                await self._delete(name)

    async def close(self) -> None:
        await self._try(self._feeds.close())
        self._leases.close()
