"""The failure lifecycle of one handler (R2): immediate retries, then a
pause with backoff, then park / block the key / block — and the circuit
breaker that pauses the whole handler during an outage instead of parking.

The loops (topics.py, queues.py) call :meth:`Lifecycle.decide` after a try
failed; it answers ``AGAIN`` (try now), a :class:`Stop` (pause until), or
``None`` (the message was parked: go on).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import TidingsError
from ..message import Record
from ..ports.failed import FailedStore
from .alerts import Alerts
from .failures import failed_event, history_entry
from .handlers import HandlerSpec, Message, key_of
from .metrics import HandlerMetrics
from .outcomes import Reject, Retry
from .policy import BreakerPolicy, RetryPolicy

log = logging.getLogger("tidings.runtime")
AGAIN = "again"


@dataclass(frozen=True)
class Stop:
    """Pause (the partition, the message, or with ``whole`` the handler)
    until ``resume_at`` (``time.monotonic()`` seconds)."""

    resume_at: float
    whole: bool = False


class Breaker:
    """Counts recent outcomes; open while most of them fail across keys."""

    def __init__(self, policy: BreakerPolicy, on_open: Callable[[float, int], None]) -> None:
        self.policy = policy
        self._on_open = on_open
        self._failures: deque[tuple[float, Any]] = deque()
        self._ok: deque[tuple[float, int]] = deque()
        self.open_until = 0.0
        self._pause = policy.pause
        self._probing = False

    def success(self, n: int = 1) -> None:
        if n <= 0:
            return
        if self._probing:  # the first message after a pause went through: closed
            self._probing, self._pause = False, self.policy.pause
            self._failures.clear()
        if self._failures:  # only worth counting while something fails
            self._ok.append((time.monotonic(), n))

    def failure(self, key: Any) -> bool:
        """Count a failed round; True if the breaker is (now) open."""
        now = time.monotonic()
        if not self.policy.enabled:
            return False
        if now < self.open_until:
            return True
        if self._probing:
            return self._open(now, min(self._pause * 2, self.policy.pause_max))
        self._failures.append((now, key))
        self._trim(now)
        failed = len(self._failures)
        ok = sum(n for _, n in self._ok)
        keys = len({k for _, k in self._failures})
        p = self.policy
        if failed >= p.min_failures and keys >= p.min_keys and failed / (failed + ok) >= p.ratio:
            return self._open(now, self._pause)
        return False

    def _open(self, now: float, pause: float) -> bool:
        self._pause = pause
        self.open_until = now + pause
        self._probing = True
        failures = len(self._failures)
        self._failures.clear()
        self._ok.clear()
        self._on_open(pause, failures)
        return True

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.window
        while self._failures and self._failures[0][0] < horizon:
            self._failures.popleft()
        while self._ok and self._ok[0][0] < horizon:
            self._ok.popleft()


class Lifecycle:
    """Decides what happens to a failing message of one handler."""

    def __init__(
        self, app: str, spec: HandlerSpec, store: FailedStore, alerts: Alerts, group: str | None
    ) -> None:
        self.app, self.spec, self.store, self.alerts, self.group = app, spec, store, alerts, group
        self.history: dict[Any, list[dict[str, Any]]] = {}
        self.blocked: dict[bytes, int] = {}
        self.breaker = Breaker(spec.policies.breaker, self._breaker_opened)
        self._alerted_block: set[Any] = set()
        self.metrics = HandlerMetrics()

    def _breaker_opened(self, pause: float, failures: int) -> None:
        log.warning(
            "circuit breaker of %s opened for %.1fs", self.spec.name, pause,
            extra={"app": self.app, "handler": self.spec.name, "pause_s": pause},
        )  # fmt: skip
        self.alerts.send("breaker_open", self.app, self.spec.name, pause_s=pause, failures=failures)

    def decide(self, m: Message, out: Any, tries: int, round_: int) -> str | Stop | None:
        """After try ``tries`` of delivery round ``round_`` gave ``out`` (an
        exception, Retry or Reject)."""
        if isinstance(out, BaseException) and self.spec.policies.classify is not None:
            out = self.spec.policies.classify(out, m) or out
        if isinstance(out, Reject):
            self._remember(m, out)
            return self._park(m, out, round_)
        policy = self.spec.policies.default
        if isinstance(out, BaseException):
            policy = self.spec.policies.for_exception(out)
            if isinstance(out, policy.park_at_once):
                self._remember(m, out)
                return self._park(m, out, round_)
            if tries <= policy.immediate:
                self.metrics.retries += 1
                return AGAIN
        self.metrics.failed_rounds += 1
        self._remember(m, out)
        # An explicit Retry is the handler's decision; only failures count
        # towards an outage.
        if isinstance(out, BaseException) and self.breaker.failure(key_of(m) or _where(m)[:2]):
            return Stop(self.breaker.open_until, whole=True)
        if round_ < policy.rounds:
            delay = out.delay if isinstance(out, Retry) else policy.delay(round_)
            return Stop(time.monotonic() + delay)
        return self._exhausted(m, out, policy, round_)

    def _exhausted(self, m: Message, out: Any, policy: RetryPolicy, round_: int) -> Stop | None:
        if policy.on_exhausted == "block":
            ident = _where(m)
            if ident not in self._alerted_block:
                self._alerted_block.add(ident)
                self.alerts.send("blocked", self.app, self.spec.name, message=str(ident))
            return Stop(time.monotonic() + policy.backoff_max)
        blocks = policy.on_exhausted == "block_key" and key_of(m) is not None
        if isinstance(out, Retry):  # the handler kept asking for more time
            out = Reject(f"still asking to retry after {round_} deliveries")
            return self._park(m, out, round_, blocks_key=blocks, kind="RetriesExhausted")
        return self._park(m, out, round_, blocks_key=blocks)

    def _remember(self, m: Message, out: Any) -> None:
        exc = out if isinstance(out, (BaseException, Reject)) else RuntimeError(repr(out))
        entries = self.history.setdefault(_where(m), [])
        entries.append(history_entry(exc))
        if len(self.history) > 10_000:  # bound memory: forget the oldest failing message
            self.history.pop(next(iter(self.history)))

    def forget(self, m: Message) -> None:
        self.history.pop(_where(m), None)

    def over_limit(self, deliveries: int) -> bool:
        """A message delivered this often without an outcome is parked
        before the handler runs — unless the policy never skips (block)."""
        policy = self.spec.policies.default
        return deliveries > policy.rounds and policy.on_exhausted != "block"

    def still_blocked(self, key: bytes | None) -> bool:
        """Whether ``key`` is still blocked, re-read from the store (a read
        per message of a blocked key, which is parked anyway) so a key
        resolved by triage a moment ago flows again."""
        try:
            self.blocked = self.store.blocked_keys(self.app, self.spec.name)
        except TidingsError as exc:  # cannot tell: keep it blocked
            log.warning("reading blocked keys failed: %s", exc)
        return key in self.blocked

    def park_blocked(self, m: Message, head: int) -> Stop | None:
        """Park a message whose key is blocked behind failed event ``head``."""
        exc = Reject(f"key blocked behind failed event {head}")
        self._remember(m, exc)
        return self._park(m, exc, 0, blocks_key=True, blocked_by=head)

    def park_unfinished(self, m: Message, deliveries: int) -> Stop | None:
        """Park a message delivered ``deliveries`` times without an outcome
        (each time, its process died while handling it)."""
        exc = Reject(
            f"delivered {deliveries} times without finishing: the process handling it "
            "probably died each time"
        )
        self._remember(m, exc)
        return self._park(m, exc, deliveries, kind="DeliveriesExhausted")

    def _park(
        self,
        m: Message,
        out: Any,
        round_: int,
        blocks_key: bool = False,
        blocked_by: int | None = None,
        kind: str | None = None,
    ) -> Stop | None:
        exc = out if isinstance(out, (BaseException, Reject)) else Reject(repr(out))
        history = self.history.get(_where(m), [])
        event = failed_event(
            self.app, self.spec.name, self.group, m, exc, max(round_, 1), history,
            blocks_key=blocks_key, blocked_by=blocked_by,
        )  # fmt: skip
        if kind is not None:
            event = _replace(event, exception_type=kind)
        try:
            event_id = self.store.park(event)
        except TidingsError as exc_store:  # cannot park now: keep the message, try later
            log.warning("parking a failed message of %s failed: %s", self.spec.name, exc_store)
            return Stop(time.monotonic() + 1.0)
        self.forget(m)
        self.metrics.parked += 1
        self._after_park(m, event_id, event.exception_type, blocks_key and blocked_by is None)
        return None

    def _after_park(self, m: Message, event_id: int, kind: str, new_block: bool) -> None:
        log.warning(
            "parked %s as failed event %d (%s)", _where(m), event_id, kind,
            extra={"app": self.app, "handler": self.spec.name, "failed_event": event_id,
                   "exception_type": kind, "where": "/".join(map(str, _where(m)))},
        )  # fmt: skip
        self.alerts.send("parked", self.app, self.spec.name, failed_event=event_id, exception=kind)
        key = key_of(m)
        if new_block and key is not None:
            self.blocked.setdefault(key, event_id)
            self.alerts.send(
                "key_blocked",
                self.app,
                self.spec.name,
                key=key.decode(errors="replace"),
                failed_event=event_id,
            )


def _replace(event: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(event, **changes)


def _where(m: Message) -> tuple[Any, ...]:
    if isinstance(m, Record):
        return (m.topic, m.partition, m.offset)
    return (m.queue, m.id)
