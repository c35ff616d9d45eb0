"""Queue operations of :class:`~tidings.Client` (Q1–Q6), as a mixin.

Bodies go through the client's codec-free path: ``bytes`` or ``str``
(UTF-8); encode other values with a codec first (``JSON.encode(obj)``).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from ..codecs import BYTES
from ..config import QueueConfig, parse_duration
from ..errors import ConfigurationError, TidingsError, UnsupportedFeature
from ..message import Delivery, Headers, QueueStats
from ..ports.engine import Engine
from ..ports.queue import (
    DeadLetterAdmin,
    OutgoingMessage,
    Settlement,
    TransactionalQueues,
    TransactionalSettle,
    dead_letter_admin,
    lease_extension,
    lease_release,
    visibility_clock,
)
from ..tracing import ENABLED as TRACING
from ..tracing import inject

#: How often a waiting get re-claims on an engine without a visibility clock.
_POLL_S = 0.05


class QueueMethods:
    """Declare, publish, get, ack/nack/reject, exchanges, dead letters."""

    engine: Engine

    # ---- declaration ------------------------------------------------------
    def declare_queue(  # noqa: PLR0913
        self,
        name: str,
        *,
        lease: float | str = "30s",
        max_deliveries: int | None = None,
        dead_letter: str | None = None,
        dedup_window: float | str = "5m",
        ttl: float | str | None = None,
        max_length: int | None = None,
        overflow: str = "reject",
        fifo: bool = False,
    ) -> QueueConfig:
        """Create a queue (or confirm an identical one exists).

        Dead letters (rejected, out of deliveries, expired, pushed out by
        ``max_length``) go to ``dead_letter``, created with default settings
        if it does not exist yet; without one, to the queue's own
        ``<name>.dlq``, created (plain) with the first dead letter. A dead
        letter is never dropped. Raises ConfigurationError (bad option, a
        dead-letter loop) or AlreadyExists (same name, other settings)."""
        config = QueueConfig(
            name=name,
            lease_s=parse_duration(lease, "lease"),
            max_deliveries=max_deliveries,
            dead_letter=dead_letter,
            dedup_window_s=parse_duration(dedup_window, "dedup_window"),
            ttl_s=None if ttl is None else parse_duration(ttl, "ttl"),
            max_length=max_length,
            overflow=overflow,  # type: ignore[arg-type]  # validated by QueueConfig
            fifo=fifo,
        )
        return self.engine.queues.declare(config)

    def queues(self) -> list[QueueConfig]:
        return self.engine.queues.list_queues()

    def queue(self, name: str) -> QueueConfig:
        """A queue's settings; raises QueueNotFound."""
        return self.engine.queues.get_queue(name)

    def queue_stats(self, name: str) -> QueueStats:
        """Ready, leased, delayed and dead-lettered counts."""
        return self.engine.queues.stats(name)

    def purge_queue(self, name: str) -> int:
        return self.engine.queues.purge(name)

    def delete_queue(self, name: str) -> None:
        self.engine.queues.delete(name)

    # ---- publishing -------------------------------------------------------
    def publish(  # noqa: PLR0913 - keyword-only options of one message
        self,
        queue: str,
        body: bytes | str,
        *,
        headers: Headers | None = None,
        idempotency_key: str | None = None,
        delay: float | str = 0,
        not_before: datetime | None = None,
        group: str | None = None,
        connection: Any = None,
    ) -> int:
        """Store one message durably; its id. With an ``idempotency_key`` seen
        within the dedup window, nothing is stored and the original id
        comes back (Q3). With ``connection`` (your own sqlite3 / psycopg
        connection to the same database, in your open transaction) the
        message exists iff your transaction commits."""
        message = outgoing(body, headers, idempotency_key, delay, not_before, group)
        return self._publish(queue, [message], connection)[0]

    def _publish(self, queue: str, messages: list[OutgoingMessage], connection: Any) -> list[int]:
        queues = self.engine.queues
        if connection is None:
            return queues.publish(queue, messages)
        if not isinstance(queues, TransactionalQueues) or not self.engine.features.supports(
            "transactional_publish"
        ):
            raise UnsupportedFeature(
                f"{self.engine.url}: cannot publish in your transaction; use a SQL engine"
            )
        return queues.publish_in_transaction(connection, queue, messages)

    def publish_batch(  # noqa: PLR0913 - keyword-only options of the batch
        self,
        queue: str,
        bodies: Sequence[bytes | str],
        *,
        headers: Headers | Sequence[Headers | None] | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
        delay: float | str = 0,
        group: str | None = None,
        groups: Sequence[str | None] | None = None,
        connection: Any = None,
    ) -> list[int]:
        """Store many messages in one transaction (all or none); their ids.

        ``headers``: one mapping for every message, or a sequence of one per
        message. ``idempotency_keys`` / ``groups``: one per message (None:
        that message has none), as ``idempotency_key`` / ``group`` of
        :meth:`publish`; a key seen before, even earlier in the same batch,
        stores nothing and gives back the original id (Q3).
        ``connection``: as for :meth:`publish`. Raises ConfigurationError,
        storing nothing, for a per-message argument of another length than
        ``bodies`` or of the wrong kind, and for ``group`` with ``groups``."""
        messages = batch_messages(bodies, headers, idempotency_keys, delay, group, groups)
        return self._publish(queue, messages, connection)

    def declare_exchange(self, name: str, kind: str = "fanout") -> None:
        """``fanout``, ``direct``, ``topic`` (``*``/``#`` patterns) or
        ``consistent-hash`` (binding weight = share of the keys)."""
        self.engine.queues.declare_exchange(name, kind)

    def bind(self, exchange: str, queue: str, key: str = "", weight: int = 1) -> None:
        self.engine.queues.bind(exchange, queue, key, weight)

    def bind_topic(self, topic: str, queue: str) -> None:
        """Feed ``queue`` from ``topic``: each record appended from now on is
        also published to the queue in the same transaction, with headers
        ``x-topic``, ``x-partition``, ``x-offset`` and ``x-key`` (tombstones
        are not forwarded). Raises UnsupportedFeature on the memory engine."""
        if not self.engine.features.supports("topic_bindings"):
            raise UnsupportedFeature(
                f"{self.engine.url}: this engine cannot feed queues from topics atomically"
            )
        self.engine.queues.bind_topic(topic, queue)

    def publish_to(
        self,
        exchange: str,
        body: bytes | str,
        routing_key: str = "",
        headers: Headers | None = None,
    ) -> dict[str, int]:
        """Copy one message to every queue the exchange routes it to, in one
        transaction (Q6); ``{queue: message id}``."""
        message = outgoing(body, headers, None, 0, None, None)
        routed = self.engine.queues.publish_exchange(exchange, routing_key, [message])
        return {q: ids[0] for q, ids in routed.items()}

    # ---- consuming --------------------------------------------------------
    def get(
        self, queue: str, max_messages: int = 1, wait: float | str = 0, auto_ack: bool = False
    ) -> list[Delivery]:
        """Lease up to ``max_messages``, waiting up to ``wait`` for the first.

        ``auto_ack=True`` settles them at once (at-most-once: a consumer that
        dies while handling them loses them)."""
        got = self._claim_waiting(queue, max_messages, wait)
        if auto_ack and got:
            self.ack(got)
        return got

    def _claim_waiting(self, queue: str, max_messages: int, wait: float | str) -> list[Delivery]:
        deadline = time.monotonic() + parse_duration(wait, "wait")
        got = self.engine.queues.claim(queue, max_messages)
        if got or time.monotonic() >= deadline:
            return got
        waiter = self.engine.waiter(["queue:" + queue])
        try:
            while True:
                waiter.arm()
                got = self.engine.queues.claim(queue, max_messages)
                left = deadline - time.monotonic()
                if got or left <= 0:
                    return got
                waiter.wait(min(left, self._until_due(queue)))
        finally:
            waiter.close()

    def _until_due(self, queue: str) -> float:
        """Seconds until a delayed or leased message becomes claimable: due
        times and lease ends produce no wake-up. At most a second, so a
        message delayed by another process's nack is not missed for long."""
        if not self.engine.features.supports("next_visible"):
            return _POLL_S
        clock = visibility_clock(self.engine.queues, self.engine.features)
        due = clock.next_visible(queue)
        if due is None:
            return 1.0
        return min(1.0, max(0.001, due / 1000 - time.time()))

    def ack(self, deliveries: Delivery | Sequence[Delivery], *, connection: Any = None) -> None:
        """Settle for good. Raises LeaseLost / AlreadySettled (the first
        failure; the others are still settled).

        With ``connection`` (your own sqlite3 / psycopg connection to the
        engine's database, in your open transaction) the acks are written in
        that transaction: the messages are gone iff it commits, together with
        your own writes; rolled back, they stay leased and are redelivered.
        Each lease is checked in it: on LeaseLost / AlreadySettled roll back
        (some acks of the call may already be written in it). Raises
        UnsupportedFeature on an engine that cannot ack in it."""
        if connection is None:
            self._settle(deliveries, "ack")
            return
        queues = self.engine.queues
        if not isinstance(queues, TransactionalSettle) or not self.engine.features.supports(
            "transactional_consume"
        ):
            raise UnsupportedFeature(
                f"{self.engine.url}: cannot ack in your transaction; use a SQL engine"
            )
        for queue, batch in settlements_by_queue(deliveries, "ack").items():
            errors = [e for e in queues.settle_in_transaction(connection, queue, batch) if e]
            if errors:
                raise errors[0]

    def nack(self, deliveries: Delivery | Sequence[Delivery], delay: float | str = 0) -> None:
        """Put back, visible again after ``delay`` (dead-lettered if it used
        up max_deliveries)."""
        self._settle(deliveries, "nack", parse_duration(delay, "delay"))

    def reject(self, deliveries: Delivery | Sequence[Delivery], reason: str = "rejected") -> None:
        """Send to the dead-letter queue with ``reason`` as the last error."""
        self._settle(deliveries, "reject", reason=reason)

    def _settle(
        self,
        deliveries: Delivery | Sequence[Delivery],
        action: str,
        delay_s: float = 0.0,
        reason: str = "",
    ) -> None:
        errors = [
            e
            for queue, batch in settlements_by_queue(deliveries, action, delay_s, reason).items()
            for e in self.engine.queues.settle(queue, batch)
            if e is not None
        ]
        if errors:
            raise errors[0]

    def release(self, deliveries: Delivery | Sequence[Delivery]) -> int:
        """Put back deliveries that were leased ahead but never handed to the
        code that processes them: ready again at once and *not* counted as a
        delivery (a nack counts one, toward ``max_deliveries``). Do not use it
        for a message that was looked at: nack that. Deliveries whose lease
        already ended are left alone; returns how many were put back.
        Raises QueueNotFound."""
        items = [deliveries] if isinstance(deliveries, Delivery) else list(deliveries)
        by_queue: dict[str, list[tuple[int, str]]] = {}
        for d in items:
            by_queue.setdefault(d.queue, []).append((d.id, d.receipt))
        engine = lease_release(self.engine.queues, self.engine.features)
        return sum(engine.release(q, leases) for q, leases in by_queue.items())

    def extend_lease(self, delivery: Delivery, lease: float | str) -> Delivery:
        """Keep the message ``lease`` longer; the delivery with its new lease end."""
        engine = lease_extension(self.engine.queues, self.engine.features)
        until = engine.extend(
            delivery.queue, delivery.id, delivery.receipt, parse_duration(lease, "lease")
        )
        return delivery._replace(lease_until=until)

    def subscribe(self, queue: str, prefetch: int = 10) -> Generator[Delivery, None, None]:
        """Push-style: yields deliveries as they come, holding at most
        ``prefetch`` leased at a time; messages not yet yielded when the
        iterator is closed are put back at once without counting a delivery
        (:meth:`release`)."""
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be >= 1, got {prefetch}")
        buffer: list[Delivery] = []
        try:
            while True:
                if not buffer:
                    buffer = self.get(queue, prefetch, wait=1.0)
                while buffer:
                    yield buffer.pop(0)
        finally:
            if buffer:
                try:
                    self.release(buffer)
                except TidingsError:
                    pass  # their leases simply expire and they come back then

    # ---- dead letters -----------------------------------------------------
    def dead_letters(self, queue: str, limit: int = 1000) -> list[Delivery]:
        """Messages dead-lettered from ``queue``, with their Q2 headers."""
        return self._dead_letter_admin().dead_letters(queue, limit)

    def redrive(self, queue: str, ids: Sequence[int] | None = None) -> int:
        """Move dead letters (all, or these dead-letter ids) back to ``queue``."""
        return self._dead_letter_admin().redrive(queue, ids)

    def purge_dead_letters(self, queue: str, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters that came from ``queue`` (all, or these
        dead-letter ids); how many. Raises QueueNotFound."""
        return self._dead_letter_admin().purge_dead_letters(queue, ids)

    def _dead_letter_admin(self) -> DeadLetterAdmin:
        return dead_letter_admin(self.engine.queues, self.engine.features)


def settlements_by_queue(
    deliveries: Delivery | Sequence[Delivery], action: str, delay_s: float = 0.0, reason: str = ""
) -> dict[str, list[Settlement]]:
    items = [deliveries] if isinstance(deliveries, Delivery) else list(deliveries)
    by_queue: dict[str, list[Settlement]] = {}
    for d in items:
        by_queue.setdefault(d.queue, []).append(
            Settlement(d.id, d.receipt, action, delay_s, reason)
        )
    return by_queue


def _each(name: str, values: Sequence[str | None] | None, n: int) -> Sequence[str | None]:
    """A per-message ``str | None`` argument of ``publish_batch``, checked."""
    if values is None:
        return [None] * n
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigurationError(
            f"{name}: a sequence of one str (or None) per body, not {type(values).__name__}"
        )
    _check_length(name, values, n)
    bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
    if bad is not None:
        raise ConfigurationError(f"{name}: str or None per body, not {type(bad).__name__}")
    return values


def _headers_each(headers: Any, n: int) -> Sequence[Headers | None]:
    """Per-message ``headers`` of ``publish_batch``, checked."""
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Sequence):
        raise ConfigurationError(
            f"headers: a mapping, or a sequence of one mapping per body, "
            f"not {type(headers).__name__}"
        )
    _check_length("headers", headers, n)
    bad = next((h for h in headers if h is not None and not isinstance(h, Mapping)), None)
    if bad is not None:
        raise ConfigurationError(f"headers: a mapping (or None) per body, not {type(bad).__name__}")
    return headers


def _groups(group: str | None, groups: Sequence[str | None] | None, n: int) -> Sequence[str | None]:
    if groups is None:
        return [group] * n
    if group is not None:
        raise ConfigurationError("give either group (every message) or groups (one per body)")
    return _each("groups", groups, n)


def _check_length(name: str, values: Sequence[Any], n: int) -> None:
    if len(values) != n:
        raise ConfigurationError(
            f"{name}: {len(values)} values for {n} bodies (give one per body, None for none)"
        )


def batch_messages(
    bodies: Sequence[bytes | str],
    headers: Headers | Sequence[Headers | None] | None,
    idempotency_keys: Sequence[str | None] | None,
    delay: float | str,
    group: str | None,
    groups: Sequence[str | None] | None,
) -> list[OutgoingMessage]:
    """The messages of :meth:`QueueMethods.publish_batch` (validated)."""
    # Validate the shared options once, then build plain tuples: this
    # loop runs per message on the publish hot path.
    shared = headers if headers is None or isinstance(headers, Mapping) else None
    _, hdrs, _, delay_s, _, _ = outgoing(b"", shared, None, delay, None, group)
    encode = BYTES.encode
    if shared is headers and idempotency_keys is None and groups is None:
        messages = [
            OutgoingMessage(encode(b), hdrs, None, delay_s, None, group) for b in bodies
        ]
    else:
        n = len(bodies)
        each_h = repeat(hdrs, n) if shared is headers else _headers_each(headers, n)
        keys = _each("idempotency_keys", idempotency_keys, n)
        messages = [
            OutgoingMessage(encode(b), h or {}, k, delay_s, None, g)
            for b, h, k, g in zip(bodies, each_h, keys, _groups(group, groups, n), strict=True)
        ]
    return messages


def outgoing(
    body: bytes | str,
    headers: Headers | None,
    idempotency_key: str | None,
    delay: float | str,
    not_before: datetime | None,
    group: str | None,
) -> OutgoingMessage:
    data: Any = BYTES.encode(body)
    if TRACING:  # the current span's context travels with the message
        headers = inject(headers)
    return OutgoingMessage(
        data,
        headers or {},
        idempotency_key,
        parse_duration(delay, "delay"),
        None if not_before is None else int(not_before.timestamp() * 1000),
        group,
    )
