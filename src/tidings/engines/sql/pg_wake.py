"""Wake-ups across hosts on PostgreSQL: ``pg_notify`` after the commit, and
only for channels someone waits on.

Why not inside the writing transaction: PostgreSQL serialises the commits of
notifying transactions under one database-wide lock held through their WAL
flush, and signals every listening session of the database for each
notification. With 8 publishing processes (``benchmarks/pg_notify.py``)
in-commit notifications left 0.30-0.34 of the rate without wake-ups; this
design 0.41-0.68 (figures in docs/postgresql.md).

* :class:`Presence`: a client that waits on a channel holds a shared
  advisory lock named after it (schema and channel), on a connection of its
  own, for as long as it has waiters there (and ``LINGER_S`` after, so a
  consumer alternating between reading and waiting does not flap it).
* :class:`WakeSender`: after a commit, the channels it touched are sent from
  a thread of the client, coalesced, in one statement that notifies a
  channel only if it cannot take that advisory lock exclusively, i.e. if
  someone waits there. Nobody waiting: no NOTIFY, no lock, no signal.
* No wake-up is missed: a waiter takes its lock *before* it re-reads, and
  the sender checks *after* the commit. Either the check sees the lock (and
  notifies), or the lock came later, and so did the re-read, which then
  sees the commit.
* :class:`Listener`: one LISTEN connection per client fans notifications out
  to this process's waiters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import psycopg

from ...backoff import full_jitter
from ...errors import TidingsError
from ..memory.waiter import MemoryWaiters

log = logging.getLogger("tidings.postgres")
CHANNEL = "tidings"
_KEY = 7428292  # advisory lock class for "someone waits on this channel"
_NAMED = "hashtext(current_schema() || ':' || c)"  # the lock's second key, per channel

# synchronous_commit off: the statement writes nothing worth a WAL flush
# (but NOTIFY takes an XID, so it would wait for one under the notify lock).
_WAKE = (
    "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true) AS off) "
    f"SELECT pg_notify(%s, c) FROM quick, unnest(%s::text[]) AS c "
    f"WHERE NOT pg_try_advisory_xact_lock({_KEY}, {_NAMED})"
)
_HOLD = f"SELECT pg_advisory_lock_shared({_KEY}, {_NAMED}) FROM unnest(%s::text[]) AS c"
_DROP = f"SELECT pg_advisory_unlock_shared({_KEY}, {_NAMED}) FROM unnest(%s::text[]) AS c"


class WakeSender:
    """Sends wake-ups for commits that happened, from a thread of its own:
    channels that pile up while one statement runs go out together in the
    next. A wake-up lost (the process dies right after its commit, the
    server is down) only makes waiters wait for their own re-check (at most
    1 s); they re-read then and miss nothing."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="tidings-wake", daemon=True)
        self._thread.start()

    def send(self, channels: Collection[str]) -> None:
        """Queue wake-ups for these channels; returns at once."""
        with self._cond:
            self._pending.update(channels)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = sorted(self._pending), set()
            try:
                self._connect().raw.execute(_WAKE, (CHANNEL, batch))
            except (psycopg.Error, TidingsError) as exc:
                log.warning("could not send %d wake-ups (waiters re-read): %s", len(batch), exc)

    def stop(self) -> None:
        """Send what is pending, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=2)


class Presence:
    """The advisory locks that tell senders this client waits on a channel."""

    LINGER_S = 5.0

    def __init__(self, connect: Callable[[], Any], listening: threading.Event) -> None:
        self._connect = connect
        self._listening = listening
        self._conn: Any = None
        self._lock = threading.Lock()
        self._waiting: dict[str, int] = {}  # channel -> waiters now
        self._idle: dict[str, float] = {}  # held, nobody waiting since (monotonic)

    def hold(self, channels: Collection[str]) -> None:
        """Before a waiter's first re-read: its channels are announced. If
        that fails (server down), it is logged: the waiter still re-reads
        every second."""
        self._listening.wait(2)  # a NOTIFY before our LISTEN would be lost
        with self._lock:
            new = [c for c in channels if c not in self._waiting and c not in self._idle]
            for c in channels:
                self._waiting[c] = self._waiting.get(c, 0) + 1
                self._idle.pop(c, None)
            self._sync(new)

    def release(self, channels: Collection[str]) -> None:
        with self._lock:
            now = time.monotonic()
            for c in channels:
                left = self._waiting.get(c, 0) - 1
                if left > 0:
                    self._waiting[c] = left
                else:
                    self._waiting.pop(c, None)
                    self._idle[c] = now

    def tick(self) -> None:
        """Drop locks nobody needed for ``LINGER_S``; retake all after a
        lost connection."""
        with self._lock:
            due = [c for c, since in self._idle.items() if time.monotonic() - since > self.LINGER_S]
            for c in due:
                del self._idle[c]
            try:
                if due and self._conn is not None and not self._conn.broken:
                    self._conn.raw.execute(_DROP, (due,))
                if not self._waiting and not self._idle and self._conn is not None:
                    self._conn.close()  # nothing held: give the connection back
                    self._conn = None
                self._sync([])
            except (psycopg.Error, TidingsError) as exc:
                self._lost(exc)

    def _sync(self, new: list[str]) -> None:
        if not self._waiting and not self._idle:
            return  # nothing to hold: no connection needed
        try:
            if self._conn is None or self._conn.broken:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self._conn = self._connect()  # a new session holds nothing: take them all
                new = [*self._waiting, *self._idle]
            if new:
                self._conn.raw.execute(_HOLD, (new,))
        except (psycopg.Error, TidingsError) as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        log.warning("could not announce waiters (they re-read every second): %s", exc)
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


class Listener:
    """LISTENs on one connection and wakes this process's waiters; between
    notifications (every 0.5 s at most) it runs ``tick``."""

    def __init__(
        self,
        connect: Callable[[], Any],
        waiters: MemoryWaiters,
        tick: Callable[[], None],
        listening: threading.Event,
    ) -> None:
        self._connect = connect
        self._waiters = waiters
        self._tick = tick
        self.listening = listening  # set once LISTEN has run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tidings-listen", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, TidingsError) as exc:
                log.warning("PostgreSQL listener lost its connection, retrying: %s", exc)
                self._waiters.notify_everyone()  # consumers re-read; nothing missed
                self._stop.wait(full_jitter(0, 1.0, 1.0))  # clients do not reconnect in step

    def _listen(self) -> None:
        conn = self._connect()
        try:
            conn.raw.execute(f"LISTEN {CHANNEL}")
            self.listening.set()
            while not self._stop.is_set():
                for note in conn.raw.notifies(timeout=0.5):
                    self._waiters.notify(note.payload)
                self._tick()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
