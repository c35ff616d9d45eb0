"""Exchanges (Q6) on RabbitMQ exchanges.

fanout, direct and topic are RabbitMQ's own exchange types and bindings:
RabbitMQ routes each publish, once, to every matching queue (one confirm;
a publisher that dies cannot leave a copy in some queues only). tidings
also keeps the kind and bindings in a catalog (exchange_catalog.py): AMQP
cannot list bindings, and a publish returns the queues it reached and is
checked against each queue's limits before anything is sent.

consistent-hash: tidings picks the queue with the ring every engine uses
(tidings.routing) and publishes through a RabbitMQ direct exchange on which
each queue is bound under its own name. RabbitMQ's x-consistent-hash
exchange is not used: a client cannot learn which queue it chose (a publish
must return it), and its ring is rebuilt from binding order on restart.

Unroutable: tidings sends nothing when its catalog matches no queue
(``{}``, as on every engine); every publish is mandatory, so a message
RabbitMQ still cannot route (a bound queue deleted and declared again:
RabbitMQ dropped its bindings) comes back and raises QueueNotFound, stored
nowhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiormq

from ...config import QueueConfig, validate_name
from ...errors import (
    AlreadyExists,
    ConfigurationError,
    EngineError,
    NotFoundError,
    QueueFull,
    QueueNotFound,
    UnsupportedFeature,
)
from ...ports.queue import OutgoingMessage
from ...routing import Binding, check_kind, route
from . import exchange_catalog as catalog
from . import headers as hdr
from .link import DROPPED, Link, persistent
from .lock import Locks
from .refusals import declare_refused

_NATIVE_TYPES = {"fanout": "fanout", "direct": "direct", "topic": "topic",
                 "consistent-hash": "direct"}
_PUBLISH_ATTEMPTS = 5

Require = Callable[[str], Awaitable[QueueConfig]]
Prepare = Callable[[QueueConfig, Sequence[OutgoingMessage]], Awaitable[None]]


class RabbitExchanges:
    """The exchange half of RabbitQueues."""

    def __init__(
        self, link: Link, locks: Locks, require: Require, prepare: Prepare, timeout_s: float
    ) -> None:
        self._link = link
        self._locks = locks
        self._require = require
        self._prepare = prepare  # checks a batch against a queue's limits
        self._timeout = timeout_s
        self.declared: set[str] = set()

    async def declare(self, name: str, kind: str) -> None:
        validate_name("exchange", name)
        check_kind(kind)  # before RabbitMQ: an unknown type closes the whole connection
        async with self._locks.held(name, self._timeout):
            existing = await catalog.read(self._link, name)
            if existing is not None and existing.kind != kind:
                raise AlreadyExists(
                    f"exchange {name!r} exists with kind {existing.kind!r}: delete it "
                    "or declare it with that kind"
                )
            if existing is not None:  # declared again natively: heals one deleted by hand
                await self._declare_native(name, kind)
                return
            await self._create(name, kind)
        self.declared.add(name)

    async def _create(self, name: str, kind: str) -> None:
        """The RabbitMQ exchange, then its catalog entry: both or neither."""
        existed = await _exchange_exists(self._link, name)
        try:
            await self._declare_native(name, kind)
            await catalog.write(self._link, name, catalog.Entry(kind), fresh=True)
        except BaseException:
            if not existed:
                await _drop_exchange(self._link, name)
            raise

    async def _declare_native(self, name: str, kind: str) -> None:
        async with self._link.scratch() as channel:
            try:
                await channel.declare_exchange(name, _NATIVE_TYPES[kind], durable=True)
            except aiormq.exceptions.ChannelClosed as exc:
                raise declare_refused(exc, "exchange", name) from exc

    async def bind(self, exchange: str, queue: str, key: str, weight: int) -> None:
        async with self._locks.held(exchange, self._timeout):
            entry = await self._entry(exchange)
            await self._require(queue)
            if entry.kind == "consistent-hash" and weight < 1:
                raise ConfigurationError(f"a consistent-hash weight must be >= 1, not {weight}")
            binding = Binding(queue, key, weight)
            async with self._link.scratch() as channel:
                target = await channel.get_queue(queue, ensure=False)
                await target.bind(exchange, routing_key=_native_key(entry, binding))
            await catalog.write(self._link, exchange, entry.with_binding(binding), fresh=False)

    async def publish(
        self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage], ids: list[int]
    ) -> dict[str, list[int]]:
        """Checked against every target queue first; then each message
        routed by RabbitMQ once, confirmed."""
        entry = await self._entry(exchange)
        targets = route(entry.kind, entry.bindings, routing_key)
        if not targets or not messages:
            return {}
        if any(m.delay_s > 0 or m.not_before_ms is not None or m.group for m in messages):
            raise UnsupportedFeature(
                "the amqp:// engine cannot delay or group a publish to an exchange (RabbitMQ "
                "routes it once, to the queues themselves): publish it to each queue"
            )
        if any(m.idempotency_key for m in messages):
            raise UnsupportedFeature(
                "the amqp:// engine deduplicates per queue only: publish keyed messages "
                "to each queue"
            )
        for queue in targets:
            await self._prepare(await self._require(queue), messages)
        key = targets[0] if entry.kind == "consistent-hash" else routing_key
        await asyncio.gather(
            *(self._send(exchange, key, m, i) for m, i in zip(messages, ids, strict=True))
        )
        return {queue: list(ids) for queue in targets}

    async def _entry(self, exchange: str) -> catalog.Entry:
        entry = await catalog.read(self._link, exchange)
        if entry is None:
            raise NotFoundError(
                f"exchange {exchange!r} does not exist: declare it with client.declare_exchange"
            )
        return entry

    async def _send(self, exchange: str, key: str, m: OutgoingMessage, id: int) -> None:
        headers: dict[str, Any] = {**m.headers, hdr.ID: str(id)}
        for attempt in range(_PUBLISH_ATTEMPTS):
            try:
                channel = await self._link.channel()
                target = await channel.get_exchange(exchange, ensure=False)
                await target.publish(persistent(m.body, headers, id), key, mandatory=True)
                return
            except aiormq.exceptions.PublishError as exc:
                raise QueueNotFound(
                    f"RabbitMQ could not route this message from exchange {exchange!r} "
                    f"(key {key!r}) to any queue: a bound queue was deleted (and its "
                    "bindings with it); bind it again. Nothing was stored"
                ) from exc
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                await self._link.reset()  # RabbitMQ closed the main channel
                raise NotFoundError(
                    f"exchange {exchange!r} was deleted in RabbitMQ behind tidings: declare "
                    "it again (client.declare_exchange) and bind its queues"
                ) from exc
            except aiormq.exceptions.DeliveryError as exc:
                raise QueueFull(
                    f"a queue bound to exchange {exchange!r} refused the message ({exc}): "
                    "other bound queues may have stored it; consume or purge the full queue"
                ) from exc
            except DROPPED:
                await self._link.reset()
            await asyncio.sleep(0.05 * 2**attempt)
        raise EngineError(f"RabbitMQ did not confirm a publish to exchange {exchange!r}: retry")

    async def delete_declared(self) -> None:
        """Delete the exchanges this engine declared (tests)."""
        for name in sorted(self.declared):
            await _drop_exchange(self._link, name)
            await catalog.remove(self._link, name)
        self.declared.clear()


def _native_key(entry: catalog.Entry, binding: Binding) -> str:
    """The RabbitMQ binding key: the queue's own name on a consistent-hash
    exchange (tidings picks the queue), else the binding key."""
    return binding.queue if entry.kind == "consistent-hash" else binding.key


NO_TOPIC_BINDINGS = (
    "the amqp:// engine cannot feed a queue from a topic atomically (a stream append "
    "and a queue publish share no transaction on RabbitMQ): consume the topic and "
    "publish to the queue"
)


async def _exchange_exists(link: Link, name: str) -> bool:
    async with link.scratch() as channel:
        try:
            await channel.declare_exchange(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
    return True


async def _drop_exchange(link: Link, name: str) -> None:
    try:
        async with link.scratch() as channel:
            await channel.exchange_delete(name)
    except Exception:  # best effort: the original error says more
        pass

