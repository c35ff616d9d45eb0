"""The queue side of an engine (contracts Q1–Q6).

Blocking and thread-safe. Errors: ``QueueNotFound``, ``AlreadyExists``,
``ConfigurationError``, ``RecordTooLarge`` (body over ``max_body_bytes``),
``QueueFull``, ``LeaseLost``, ``AlreadySettled``, ``EngineError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..config import QueueConfig
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
    """Queues, exchanges and dead-letter queues."""

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

    def next_visible(self, queue: str) -> int | None:
        """When (ms) the next delayed or leased message becomes claimable,
        or None if none is waiting — so a waiting ``get`` sleeps until then
        instead of polling (a due time produces no wake-up)."""
        ...

    def settle(self, queue: str, settlements: Sequence[Settlement]) -> list[BaseException | None]:
        """Ack / nack / reject each; per item ``None`` or the error
        (LeaseLost, AlreadySettled) — one stale receipt fails alone."""
        ...

    def release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        """End these (message id, receipt) leases as if the messages had never
        been delivered: ready again at once, their delivery count undone (so
        they do not move toward ``max_deliveries``). For deliveries a consumer
        leased ahead and never handed to its caller. Leases that already
        ended are left alone; returns how many were released."""
        ...

    def extend(self, queue: str, id: int, receipt: str, lease_s: float) -> int:
        """Push the lease out to now + ``lease_s``; the new lease end (ms)."""
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

    # ---- dead letters (Q2)
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
