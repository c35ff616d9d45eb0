"""Triage of failed events (R3), the Python side of ``tidings failed …``.

Every action takes one id, several ids, or a :class:`FailedFilter` (bulk),
and ``dry_run``. Ids are all checked before anything is done (an unknown id
raises FailedEventNotFound, a resolved one AlreadyResolved: nothing
applied). Each event is claimed atomically (so two support engineers
cannot both republish it), acted on, and the action recorded with who,
when and the outcome; an action that fails puts the event back to parked.

* ``discard``: resolve it without handling.
* ``republish``: publish the original key, headers (redacted ones stay
  redacted) and payload to the original topic partition / queue, with
  ``x-tidings-replay-count`` one higher; if it fails again it is parked
  again with that replay count — never looped automatically.
* ``replay``: re-process in place: run the App's handler on the stored
  message in this process; on failure the message is parked again (a new
  failed event with ``replay_count + 1`` and the history so far).
"""

from __future__ import annotations

import asyncio
import getpass
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..client.client import Client
from ..errors import AlreadyResolved, ConfigurationError, TidingsError
from ..message import Delivery, Record
from ..ports.failed import (
    PARKED,
    FailedAction,
    FailedEvent,
    FailedFilter,
    FailureGroup,
    failed_store,
)
from .app import App
from .failures import FAILED_ID_HEADER, HOST, REPLAY_HEADER, describe, history_entry
from .handlers import make_call
from .lanes import _failed

Target = int | Sequence[int] | FailedFilter


@dataclass(frozen=True)
class TriageResult:
    """What one action did to one failed event. ``outcome``: ``ok``,
    ``failed`` or ``dry-run``; ``parked_again``: the new failed event's id
    when a replay failed again."""

    event_id: int
    action: str
    outcome: str
    detail: str = ""
    parked_again: int | None = None


class FailedEvents:
    """Triage on one engine: ``FailedEvents(client, actor="alice")``."""

    def __init__(self, client: Client, actor: str | None = None) -> None:
        self.client = client
        self.store = failed_store(client.engine)
        self.actor = actor or f"{_user()}@{HOST}"

    # ---- reading ---------------------------------------------------------------
    def find(self, where: FailedFilter | None = None, limit: int = 1000) -> list[FailedEvent]:
        """Failed events matching ``where`` (default: every parked one), oldest first."""
        return self.store.find(where or FailedFilter(), limit)

    def show(self, event_id: int) -> FailedEvent:
        """One failed event; raises FailedEventNotFound."""
        return self.store.get(event_id)

    def groups(self, where: FailedFilter | None = None) -> list[FailureGroup]:
        """Counts with first/last seen, by exception type and call site."""
        return self.store.groups(where or FailedFilter())

    def actions(self, event_id: int | None = None) -> list[FailedAction]:
        """Recorded triage actions (of one event, or all)."""
        return self.store.actions(event_id)

    # ---- actions -----------------------------------------------------------------
    def discard(self, target: Target, dry_run: bool = False) -> list[TriageResult]:
        """Resolve without handling. Raises FailedEventNotFound / AlreadyResolved."""
        return self._each(target, "discard", "discarded", dry_run, lambda e: ("", None))

    def republish(self, target: Target, dry_run: bool = False) -> list[TriageResult]:
        """Publish the originals again. Raises FailedEventNotFound / AlreadyResolved."""
        return self._each(target, "republish", "republished", dry_run, self._republish)

    def replay(self, target: Target, app: App, dry_run: bool = False) -> list[TriageResult]:
        """Re-process in place with ``app``'s handler. Raises
        FailedEventNotFound / AlreadyResolved, or ConfigurationError when
        ``app`` has no handler of an event's name (nothing applied)."""
        events = self._resolve(target)
        for e in events:
            if e.handler not in app.handlers:
                raise ConfigurationError(
                    f"failed event {e.id} belongs to handler {e.handler!r}, "
                    f"which app {app.name} does not have"
                )
        return self._apply(events, "replay", "replayed", dry_run, lambda e: self._replay(e, app))

    # ---- machinery ---------------------------------------------------------------
    def _resolve(self, target: Target) -> list[FailedEvent]:
        if isinstance(target, FailedFilter):
            return self.store.find(_parked(target), 100_000)
        ids = [target] if isinstance(target, int) else list(target)
        events = [self.store.get(i) for i in ids]  # FailedEventNotFound before any change
        for e in events:
            if e.status != PARKED:
                raise AlreadyResolved(
                    f"failed event {e.id} is already {e.status} (by {e.resolved_by}); "
                    "nothing was changed"
                )
        return events

    def _each(
        self, target: Target, action: str, status: str, dry_run: bool, fn: Any
    ) -> list[TriageResult]:
        return self._apply(self._resolve(target), action, status, dry_run, fn)

    def _apply(
        self, events: list[FailedEvent], action: str, status: str, dry_run: bool, fn: Any
    ) -> list[TriageResult]:
        if dry_run:
            return [TriageResult(e.id, action, "dry-run", _describe(e)) for e in events]
        return [self._one(e, action, status, fn) for e in events]

    def _one(self, event: FailedEvent, action: str, status: str, fn: Any) -> TriageResult:
        self.store.claim(event.id, status, self.actor)
        try:
            detail, again = fn(event)
        except TidingsError as exc:
            self.store.release(event.id)
            detail = f"{type(exc).__name__}: {exc}"
            self.store.record(event.id, action, self.actor, "failed", detail)
            return TriageResult(event.id, action, "failed", detail)
        outcome = "failed" if again is not None else "ok"
        self.store.record(event.id, action, self.actor, outcome, detail)
        return TriageResult(event.id, action, outcome, detail, again)

    def _original(self, e: FailedEvent) -> Record | None:
        """The original record, by offset, while retention keeps it: its
        headers were not redacted (a failed event's were)."""
        if e.source != "topic" or e.topic is None or e.partition is None or e.offset is None:
            return None
        try:
            got = self.client.engine.log.read(e.topic, e.partition, e.offset, 1)
        except TidingsError:
            return None
        if got and got[0].offset == e.offset and got[0].key == e.key:
            return got[0]
        return None

    def _republish(self, e: FailedEvent) -> tuple[str, None]:
        original = self._original(e)
        stored = original.headers if original is not None else e.headers
        headers = {
            **stored, REPLAY_HEADER: str(e.replay_count + 1), FAILED_ID_HEADER: str(e.id)
        }  # fmt: skip
        if e.source == "topic":
            assert e.topic is not None
            partitions = self.client.topic(e.topic).partitions
            partition = (
                e.partition if e.partition is not None and e.partition < partitions else None
            )
            meta = self.client.produce(e.topic, e.payload, e.key, headers, partition)
            where = f"{e.topic}/{meta.partition}"  # the offset, where the ack tells it
            return (where if meta.offset is None else f"{where}@{meta.offset}"), None
        assert e.queue is not None
        group = None if e.key is None else e.key.decode()
        new_id = self.client.publish(e.queue, e.payload or b"", headers=headers, group=group)
        return f"{e.queue}#{new_id}", None

    def _replay(self, e: FailedEvent, app: App) -> tuple[str, int | None]:
        spec = app.handlers[e.handler]
        message = _message_of(e, self._original(e))
        call = make_call(spec)
        try:
            out = call([message] if spec.batch else message)
            if inspect.isawaitable(out):
                out = asyncio.run(_await(out))
        except Exception as exc:
            out = exc
        if out is None or not (isinstance(out, Exception) or _failed(out)):
            return "handled", None
        new_id = self.store.park(_again(e, out))
        return f"failed again: parked as failed event {new_id}", new_id


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _again(e: FailedEvent, out: Any) -> FailedEvent:
    import dataclasses

    kind, text, tb, site = describe(out if isinstance(out, Exception) else _as_exc(out))
    history = [*e.history, history_entry(out if isinstance(out, Exception) else _as_exc(out))]
    return dataclasses.replace(
        e, id=0, status=PARKED, resolved_at=None, resolved_by=None, host=HOST,
        failed_at=int(time.time() * 1000), exception_type=kind, exception_message=text,
        traceback=tb, call_site=site, attempts=e.attempts + 1, history=tuple(history[-20:]),
        replay_count=e.replay_count + 1,
    )  # fmt: skip


def _as_exc(out: Any) -> Exception:
    return RuntimeError(getattr(out, "reason", None) or f"handler returned {out!r}")


def _message_of(e: FailedEvent, original: Record | None) -> Record | Delivery:
    """The message to re-process: the original record read by offset when
    the log still has it, else the one rebuilt from the failed event."""
    headers = {**e.headers, REPLAY_HEADER: str(e.replay_count + 1)}
    if original is not None:
        return original._replace(
            headers={**original.headers, **{REPLAY_HEADER: headers[REPLAY_HEADER]}}
        )
    if e.source == "topic":
        return Record(
            e.topic or "", e.partition or 0, e.offset or 0, e.key, e.payload, e.failed_at, headers
        )
    group = None if e.key is None else e.key.decode()
    return Delivery(
        e.queue or "", e.message_id or 0, e.payload or b"", headers, e.attempts + 1, True,
        "replay", 0, group,
    )  # fmt: skip


def _parked(where: FailedFilter) -> FailedFilter:
    import dataclasses

    return dataclasses.replace(where, status=PARKED)


def _describe(e: FailedEvent) -> str:
    where = (
        f"{e.topic}/{e.partition}@{e.offset}"
        if e.source == "topic"
        else f"{e.queue}#{e.message_id}"
    )
    return f"{e.handler} {where} {e.exception_type}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"
