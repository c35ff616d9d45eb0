"""Background retention and compaction (L6) and the queues' TTL sweep (Q5),
the same loop for every engine.

Every ``interval_s`` the maintainer asks ``claim`` whether this process
should do the round (on SQLite, a lease row makes exactly one process per
interval do it), then applies retention to every topic with a limit and
compacts every compacted topic that received records since its last
compaction, sweeps expired queue messages and lets the engine tidy up (on
PostgreSQL: VACUUM the tables that churn). Errors are logged and retried
next round: maintenance never takes a producer or consumer down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import TidingsError
from ..ports.log import LogEngine

log = logging.getLogger("tidings.maintenance")


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
        self._compacted_at: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tidings-maintenance", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._claim(self._interval):
                    self.run_once(int(time.time() * 1000))
            except TidingsError as exc:
                log.warning("maintenance round failed, retrying next round: %s", exc)

    def run_once(self, now_ms: int) -> tuple[int, int]:
        """One round; returns (records removed by retention, by compaction)."""
        retained = compacted = 0
        for config in self._log.list_topics():
            if config.retention_s is not None or config.retention_bytes is not None:
                retained += self._log.enforce_retention(config.name, now_ms)
            if config.compact and self._grew(config.name):
                compacted += self._log.compact(config.name, now_ms)
        if self._sweep is not None:
            self._sweep(now_ms)
        if self._tidy is not None:
            self._tidy()
        return retained, compacted

    def _grew(self, topic: str) -> bool:
        grew = False
        for info in self._log.describe_partitions(topic):
            key = (topic, info.partition)
            grew = grew or self._compacted_at.get(key) != info.next_offset
            self._compacted_at[key] = info.next_offset
        return grew

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
