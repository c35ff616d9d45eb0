"""Background retention and compaction (L6) and the queues' TTL sweep (Q5),
the same loop for every engine.

Every ``interval_s`` the maintainer asks ``claim`` whether this process
should do the round (on SQLite and PostgreSQL, a lease row makes exactly one
process per interval do it), then applies retention to every topic with a
limit, compacts every compacted topic that is due (it received records since
its last compaction, or a tombstone it kept has since become old enough to
drop: a quiet topic meets its deadlines too), sweeps expired queue messages
and lets the engine tidy up (on PostgreSQL: VACUUM the tables that churn).

Each step fails alone: an error in one topic's retention (or in VACUUM) is
logged and the other steps still run. Whatever the error, the thread goes
on: after a failed round it retries after a jittered, growing delay, and
:meth:`Maintainer.status` says when the last round succeeded and what the
last error was. Maintenance never takes a producer or consumer down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple, TypeVar

from ..backoff import full_jitter
from ..ports.engine import MaintenanceStatus
from ..ports.log import LogEngine

log = logging.getLogger("tidings.maintenance")
R = TypeVar("R")

# Backoff after failed rounds: full jitter (a uniform delay up to a cap that
# doubles per consecutive failure) so processes sharing a database do not
# retry in step.
_BACKOFF_CAP_S = 300.0


class _Due(NamedTuple):
    """A compacted topic's state after its last compaction."""

    next_offsets: tuple[int, ...]  # per partition, when it was compacted
    tombstones_due_ms: int | None  # when the oldest tombstone kept can go


class Maintainer:
    """A daemon thread running :meth:`run_once` every ``interval_s``."""

    def __init__(
        self,
        engine_log: LogEngine,
        interval_s: float,
        claim: Callable[[float], bool],
        sweep: Callable[[int], int] | None = None,
        tidy: Callable[[], object] | None = None,
    ) -> None:
        self._log = engine_log
        self._sweep = sweep  # queues: dead-letter expired messages nobody claims
        self._tidy = tidy  # engine housekeeping, e.g. PostgreSQL's VACUUM
        self._interval = interval_s
        self._claim = claim
        self._compacted: dict[str, _Due] = {}
        self._errors: list[str] = []  # of the round under way
        self._rounds = self._failures = 0
        self._last_success: float | None = None
        self._last_error: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tidings-maintenance", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def status(self) -> MaintenanceStatus:
        """A snapshot of what the background rounds have done."""
        error, at = self._last_error or (None, None)
        return MaintenanceStatus(
            self._thread.is_alive(),
            self._interval,
            self._rounds,
            self._last_success,
            error,
            at,
            self._failures,
        )

    def _loop(self) -> None:
        delay = self._interval
        while not self._stop.wait(delay):
            if self._attempt():
                delay = self._interval
            else:
                delay = full_jitter(
                    self._failures, self._interval, max(self._interval, _BACKOFF_CAP_S)
                )

    def _attempt(self) -> bool:
        """One scheduled round; False if anything in it failed."""
        try:
            if not self._claim(self._interval):
                return True  # another process's turn
            self.run_once(int(time.time() * 1000))
        except Exception as exc:  # any error: the thread must outlive it
            self._failed("claiming the round", exc)
            self._failures += 1
            return False
        return self._failures == 0

    def run_once(self, now_ms: int) -> tuple[int, int]:
        """One round; returns (records removed by retention, by compaction).
        A step that fails is logged and recorded in :meth:`status`; the
        other steps still run."""
        self._errors = []
        configs = self._step("listing topics", self._log.list_topics) or []
        for gone in self._compacted.keys() - {c.name for c in configs}:
            del self._compacted[gone]  # deleted topics (or a failed listing: start afresh)
        retained = compacted = 0
        for config in configs:
            name = config.name
            if config.retention_s is not None or config.retention_bytes is not None:
                step = partial(self._log.enforce_retention, name, now_ms)
                retained += self._step(f"retention of {name!r}", step) or 0
            if config.compact:
                step = partial(self._compact_if_due, name, now_ms)
                compacted += self._step(f"compaction of {name!r}", step) or 0
        if self._sweep is not None:
            self._step("the TTL sweep", partial(self._sweep, now_ms))
        if self._tidy is not None:
            self._step("tidying up", self._tidy)
        self._rounds += 1
        if self._errors:
            self._failures += 1
        else:
            self._failures, self._last_success = 0, time.time()
        return retained, compacted

    def _step(self, what: str, fn: Callable[[], R]) -> R | None:
        try:
            return fn()
        except Exception as exc:
            self._failed(what, exc)
            return None

    def _failed(self, what: str, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        self._errors.append(text)
        self._last_error = (f"{what}: {text}", time.time())
        log.warning("maintenance: %s failed, retrying later: %s", what, text, exc_info=exc)

    def _compact_if_due(self, topic: str, now_ms: int) -> int:
        """Compact ``topic`` if it received records since its last
        compaction here, or a tombstone kept then is now old enough."""
        offsets = tuple(info.next_offset for info in self._log.describe_partitions(topic))
        last = self._compacted.get(topic)
        if last is not None and last.next_offsets == offsets:
            due = last.tombstones_due_ms
            if due is None or now_ms < due:
                return 0
        result = self._log.compact_round(topic, now_ms)
        self._compacted[topic] = _Due(offsets, result.tombstones_due_ms)
        return result.removed

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
