"""The clock queue deadlines (leases, delays, TTL, dedup windows) and group
sessions are judged by.

Every client compares deadlines written by other clients, so they must all
read the same clock. SQLite is one file on one host: every process reads
that host's clock (:class:`LocalClock`). PostgreSQL is shared by hosts whose
clocks differ: they all use the database server's clock
(:class:`DbClock`), read as an offset from the local one — measured when
the engine opens and again every ``recheck_s`` — rather than ``now()`` in
each statement, because the engines pass ``now`` explicitly to code shared
with SQLite, and an offset costs no round trip per call. Its error is half
a round trip (sub-millisecond on a LAN) plus the drift between rechecks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tidings.clock")


class LocalClock:
    """This host's clock (SQLite: one host, one clock)."""

    def offset_s(self) -> float:
        """Seconds to add to ``time.time()`` to get the shared clock."""
        return 0.0

    def now_ms(self) -> int:
        """The shared clock, in milliseconds since the epoch."""
        return int((time.time() + self.offset_s()) * 1000)


class DbClock(LocalClock):
    """The database server's clock, as an offset from this host's.

    ``read_db_time`` returns the server's time in seconds since the epoch
    (one query); raises what the query raises."""

    def __init__(self, read_db_time: Callable[[], float], recheck_s: float = 10.0) -> None:
        self._read = read_db_time
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._offset = 0.0
        self._measured = -float("inf")
        self._measure()  # at open: an unreachable server fails the open, as it should

    def offset_s(self) -> float:
        if time.monotonic() - self._measured > self._recheck_s:
            with self._lock:
                if time.monotonic() - self._measured > self._recheck_s:
                    try:
                        self._measure()
                    except Exception as exc:  # the call that needs the DB fails by itself
                        log.debug("could not read the database clock (kept offset): %s", exc)
                        self._measured = time.monotonic() - self._recheck_s + 1.0  # in 1 s
        return self._offset

    def _measure(self) -> None:
        before = time.time()
        server = self._read()
        after = time.time()
        self._offset = server - (before + after) / 2
        self._measured = time.monotonic()
