"""The queue side of an engine (contracts Q1–Q6).

Blocking and thread-safe. Errors: ``QueueNotFound``, ``AlreadyExists``,
``ConfigurationError``, ``RecordTooLarge`` (body over ``max_body_bytes``),
``QueueFull``, ``LeaseLost``, ``AlreadySettled``, ``EngineError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, cast, runtime_checkable

from ..config import QueueConfig
from ..errors import UnsupportedFeature
from ..features import Features
from ..message import Delivery, Headers, QueueStats


class OutgoingMessage(NamedTuple):
    """One message to publish. ``delay_s`` or ``not_before_ms`` make it
    invisible until due; ``idempotency_key`` deduplicates within the
    queue's window (Q3); ``group`` orders it within a FIFO group (Q4)."""

    body: bytes
    headers: Headers
    idempotency_key: str | None = None
    delay_s: float = 0.0
    not_before_ms: int | None = None
    group: str | None = None


class Settlement(NamedTuple):
    """How a delivery ends: ``ack``, ``nack`` (back after ``delay_s``) or
    ``reject`` (to the dead-letter queue with ``reason``)."""

    id: int
    receipt: str
    action: str
    delay_s: float = 0.0
    reason: str = ""


class QueueEngine(Protocol):
    """What every queue engine does: queues, publish, claim, settle,
    exchanges. The rest is optional: one Protocol per capability below,
    each named by a :class:`~tidings.Features` field (``lease_extension``,
    ``dead_letter_admin``, ``next_visible``, ``release``; ``nack_delay`` is a
    settle option). An engine implements a capability's methods only where it
    declares the feature supported; callers get one with :func:`lease_extension`,
    :func:`lease_release`, :func:`visibility_clock` or :func:`dead_letter_admin`."""

    def declare(self, config: QueueConfig) -> QueueConfig:
        """Create the queue, or return the existing one if its settings are
        the same (AlreadyExists if they differ)."""
        ...

    def get_queue(self, name: str) -> QueueConfig: ...
    def list_queues(self) -> list[QueueConfig]: ...
    def delete(self, name: str) -> None: ...
    def purge(self, name: str) -> int: ...
    def stats(self, name: str) -> QueueStats: ...

    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]:
        """Store all or nothing, durably; the message ids in input order (a
        duplicate idempotency key returns the original id, storing nothing)."""
        ...

    def claim(self, queue: str, max_messages: int) -> list[Delivery]:
        """Lease up to ``max_messages`` visible messages (Q1, Q4, Q5)."""
        ...

    def settle(self, queue: str, settlements: Sequence[Settlement]) -> list[BaseException | None]:
        """Ack / nack / reject each; per item ``None`` or the error
        (LeaseLost, AlreadySettled) — one stale receipt fails alone. A nack
        with ``delay_s > 0`` needs the ``nack_delay`` feature (else the item
        fails with UnsupportedFeature)."""
        ...

    # ---- exchanges (Q6)
    def declare_exchange(self, name: str, kind: str) -> None: ...
    def bind(self, exchange: str, queue: str, key: str, weight: int) -> None: ...
    def bind_topic(self, topic: str, queue: str) -> None:
        """Every record appended to ``topic`` from now on is also published
        to ``queue``, in the same transaction."""
        ...

    def publish_exchange(
        self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]
    ) -> dict[str, list[int]]:
        """Copy each message to every bound queue in one transaction."""
        ...


@runtime_checkable
class LeaseExtension(Protocol):
    """Feature ``lease_extension``: push a lease out."""

    def extend(self, queue: str, id: int, receipt: str, lease_s: float) -> int:
        """Push the lease out to now + ``lease_s``; the new lease end (ms)."""
        ...


@runtime_checkable
class LeaseRelease(Protocol):
    """Feature ``release``: give leases back without counting a delivery."""

    def release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        """End these (message id, receipt) leases as if the messages had never
        been delivered: ready again at once, their delivery count undone (so
        they do not move toward ``max_deliveries``). For deliveries a consumer
        leased ahead and never handed to its caller. Leases that already
        ended are left alone; returns how many were released."""
        ...


@runtime_checkable
class VisibilityClock(Protocol):
    """Feature ``next_visible``: when the next delayed or leased message is due."""

    def next_visible(self, queue: str) -> int | None:
        """When (ms) the next delayed or leased message becomes claimable,
        or None if none is waiting — so a waiting ``get`` sleeps until then
        instead of polling (a due time produces no wake-up)."""
        ...


@runtime_checkable
class DeadLetterAdmin(Protocol):
    """Feature ``dead_letter_admin``: browse, redrive and purge dead letters by id."""

    def dead_letters(self, queue: str, limit: int) -> list[Delivery]:
        """Messages in ``queue``'s dead-letter queue that came from it (not leased)."""
        ...

    def redrive(self, queue: str, ids: Sequence[int] | None) -> int:
        """Move dead letters (all, or these ids) back to ``queue`` with
        counters reset; returns how many moved."""
        ...

    def purge_dead_letters(self, queue: str, ids: Sequence[int] | None) -> int:
        """Delete dead letters (all, or these ids) that came from ``queue``;
        other queues' dead letters in a shared dead-letter queue stay."""
        ...


@runtime_checkable
class FullQueueEngine(
    QueueEngine, LeaseExtension, LeaseRelease, VisibilityClock, DeadLetterAdmin, Protocol
):
    """A queue engine with every optional capability (the SQL and memory engines)."""


def _require(queues: object, features: Features, name: str, protocol: type) -> None:
    if not features.supports(name) or not isinstance(queues, protocol):
        raise UnsupportedFeature(
            f"this engine does not support {name} (see its Features): {_ALTERNATIVES[name]}"
        )


def lease_extension(queues: object, features: Features) -> LeaseExtension:
    """``queues`` as a LeaseExtension; UnsupportedFeature if it is not one."""
    _require(queues, features, "lease_extension", LeaseExtension)
    return cast(LeaseExtension, queues)


def lease_release(queues: object, features: Features) -> LeaseRelease:
    """``queues`` as a LeaseRelease; UnsupportedFeature if it is not one."""
    _require(queues, features, "release", LeaseRelease)
    return cast(LeaseRelease, queues)


def visibility_clock(queues: object, features: Features) -> VisibilityClock:
    """``queues`` as a VisibilityClock; UnsupportedFeature if it is not one."""
    _require(queues, features, "next_visible", VisibilityClock)
    return cast(VisibilityClock, queues)


def dead_letter_admin(queues: object, features: Features) -> DeadLetterAdmin:
    """``queues`` as a DeadLetterAdmin; UnsupportedFeature if it is not one."""
    _require(queues, features, "dead_letter_admin", DeadLetterAdmin)
    return cast(DeadLetterAdmin, queues)


_ALTERNATIVES = {
    "lease_extension": "settle within the queue's lease, or declare it with a longer lease",
    "release": "nack the deliveries instead (each counts as a delivery)",
    "next_visible": "poll with a short wait instead",
    "dead_letter_admin": "consume the dead-letter queue with get() like any queue",
    "nack_delay": "nack without a delay, or publish a new delayed message and ack this one",
}


@runtime_checkable
class TransactionalQueues(Protocol):
    """Queues that can publish inside the caller's own database transaction."""

    def publish_in_transaction(
        self, conn: Any, queue: str, messages: Sequence[OutgoingMessage]
    ) -> list[int]: ...


@runtime_checkable
class TransactionalSettle(Protocol):
    """Queues that can settle deliveries inside the caller's own database
    transaction (SQL engines), each lease checked in it."""

    def settle_in_transaction(
        self, conn: Any, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]: ...


@runtime_checkable
class AsyncPublishing(Protocol):
    """Queues on an async driver whose publish an ``AsyncClient`` awaits
    from its event loop without a worker thread: with no hop at all when
    the engine runs on that loop (``open_engine(url, loop=...)``), else one
    hop between loops. Same contract as :meth:`QueueEngine.publish`."""

    async def apublish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]: ...


@runtime_checkable
class AsyncConsuming(Protocol):
    """Queues on an async driver whose claims and settles an ``AsyncClient``
    awaits from its event loop (as :class:`AsyncPublishing`). ``aclaim``
    waits up to ``wait_s`` for a first message; both keep the contracts of
    :meth:`QueueEngine.claim` and :meth:`QueueEngine.settle`."""

    async def aclaim(self, queue: str, max_messages: int, wait_s: float) -> list[Delivery]: ...

    async def asettle(
        self, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]: ...
