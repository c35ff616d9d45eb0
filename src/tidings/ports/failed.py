"""The failed-event store the consumer runtime needs from an engine (R2, R3).

Three things, kept durably beside the engine's topics and queues:

* failed events: a message a handler could not process, with every field
  of R3 in its own column, and its triage status;
* triage actions: who did what to which failed event, when, with what outcome;
* delivery marks: per consumer group and partition, the offset being
  handled and how many times delivery of it was attempted, written
  *before* the handler runs, so a message that kills its process is
  counted like any other failure.

Blocking and thread-safe. Errors: ``FailedEventNotFound``,
``AlreadyResolved``, ``EngineError``.

An engine offers the store through the optional capability
:class:`FailedEventsCapable` (a ``failed_store()`` method), declared by
``Features.failed_events``; :func:`failed_store` finds it. The SQL and memory
engines keep it in their own database; an engine with no database of its
own (``amqp://``) keeps it in a SQL database its URL names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ..errors import UnsupportedFeature

#: Status of a failed event: ``parked`` (waiting for triage) or one of the
#: resolutions ``replayed``, ``republished``, ``discarded``.
PARKED = "parked"
RESOLUTIONS = ("replayed", "republished", "discarded")


@dataclass(frozen=True)
class FailedEvent:
    """A message a handler could not process (R3).

    ``source`` is ``"topic"`` (``topic``/``partition``/``offset``/``group``
    set) or ``"queue"`` (``queue``/``message_id`` set). ``history`` holds
    one ``{"at", "exception_type", "message"}`` per failed attempt kept
    (bounded). ``replay_count`` counts earlier parks of the same original
    message that were replayed or republished and failed again."""

    app: str
    handler: str
    host: str
    failed_at: int  # epoch ms
    exception_type: str
    exception_message: str
    traceback: str
    call_site: str
    attempts: int
    source: str
    payload: bytes | None
    headers: Mapping[str, str] = field(default_factory=dict)
    key: bytes | None = None
    publisher: str | None = None
    history: Sequence[Mapping[str, Any]] = ()
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    group: str | None = None
    queue: str | None = None
    message_id: int | None = None
    replay_count: int = 0
    blocked_by: int | None = None
    blocks_key: bool = False
    id: int = 0
    status: str = PARKED
    resolved_at: int | None = None
    resolved_by: str | None = None


class FailedAction(NamedTuple):
    """One recorded triage action on one failed event."""

    id: int
    event_id: int
    action: str
    actor: str
    at: int  # epoch ms
    outcome: str  # "ok" or "failed"
    detail: str


@dataclass(frozen=True)
class FailedFilter:
    """Which failed events a listing or a bulk action covers (all given
    conditions hold). ``status=None`` means any status."""

    app: str | None = None
    handler: str | None = None
    topic: str | None = None
    queue: str | None = None
    exception_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    status: str | None = PARKED
    key: bytes | None = None


class FailureGroup(NamedTuple):
    """Failed events grouped by exception type and call site."""

    exception_type: str
    call_site: str
    events: int
    first_seen: int
    last_seen: int


class DeliveryMark(NamedTuple):
    """The offset a group is handling in one partition, its delivery count,
    and the end of the range read with it (offsets before ``suspect_end``
    are handled one at a time after a crash, to find the culprit)."""

    offset: int
    attempts: int
    suspect_end: int


class FailedStore(Protocol):
    """Durable failed events, triage actions and delivery marks."""

    def park(self, event: FailedEvent) -> int:
        """Store a failed event (status ``parked``); its id."""
        ...

    def get(self, event_id: int) -> FailedEvent:
        """Raises FailedEventNotFound."""
        ...

    def find(self, where: FailedFilter, limit: int = 1000) -> list[FailedEvent]:
        """Oldest first."""
        ...

    def groups(self, where: FailedFilter) -> list[FailureGroup]: ...

    def claim(self, event_id: int, status: str, actor: str) -> FailedEvent:
        """Set a parked event's status (to a resolution or ``working``) iff
        it is still parked, atomically; the event as it was. Raises
        FailedEventNotFound or AlreadyResolved (nothing changed)."""
        ...

    def release(self, event_id: int) -> None:
        """Put a claimed event back to ``parked`` (its action failed)."""
        ...

    def record(self, event_id: int, action: str, actor: str, outcome: str, detail: str) -> int:
        """Record one triage action; its id."""
        ...

    def actions(self, event_id: int | None = None, limit: int = 1000) -> list[FailedAction]: ...

    def mark(self, group: str, topic: str, partition: int, mark: DeliveryMark) -> None:
        """Store the delivery mark, durably against a process crash."""
        ...

    def marks(self, group: str, topic: str) -> dict[int, DeliveryMark]:
        """Delivery marks per partition."""
        ...

    def blocked_keys(self, app: str, handler: str) -> dict[bytes, int]:
        """Keys with a parked event of this handler that blocks its key:
        ``{key: id of the first (head) parked event}``."""
        ...


@runtime_checkable
class FailedEventsCapable(Protocol):
    """An engine that keeps failed events (``Features.failed_events``).

    ``failed_store()`` returns the store (one object may serve every call;
    it lives until the engine is closed). An engine that can keep them only
    when configured to raises UnsupportedFeature from it, saying what to
    configure, and declares ``failed_events="unsupported"`` meanwhile."""

    def failed_store(self) -> FailedStore: ...


def failed_store(engine: object) -> FailedStore:
    """The failed-event store of an opened engine. Raises UnsupportedFeature
    when the engine has none (the consumer runtime and ``tidings failed``
    cannot run on it), with what to configure where the engine knows."""
    if not isinstance(engine, FailedEventsCapable):
        url = getattr(engine, "url", type(engine).__name__)
        raise UnsupportedFeature(
            f"{url}: this engine keeps no failed events (Features.failed_events), so the "
            "consumer runtime cannot run on it; use an engine that does (sqlite://, "
            "postgresql://, or amqp:// with ?failed_store=...)"
        )
    return engine.failed_store()
