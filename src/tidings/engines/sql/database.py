"""One SQLite file shared by threads and processes.

* WAL mode: readers never block the writer or each other.
* Writes go through :class:`Writer`, a leader/follower group commit: the
  first thread to arrive takes the write lock and commits every request that
  queued meanwhile in one transaction (one fsync), each in its own savepoint
  so one bad request fails alone. This is how 8 concurrent producers share
  one fsync.
* ``BEGIN IMMEDIATE`` takes SQLite's write lock up front; while another
  process holds it we retry with short sleeps, so contention never surfaces
  as "database is locked" (only as :class:`EngineTimeout` after
  ``lock_timeout``).
* Durability per request: a commit is fsynced (``synchronous=FULL``) when
  any request in it asks for ``fsync``, else ``NORMAL`` (survives a process
  crash, not a power loss).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

from ...backoff import Backoff, full_jitter
from ...errors import (
    EngineConflict,
    EngineProtocolError,
    EngineTimeout,
    EngineUnavailable,
    TidingsError,
)
from .migrations import SCHEMA_VERSION, upgrade

T = TypeVar("T")
log = logging.getLogger("tidings.writer")
GATHER_S = 0.0005
CONFLICT_ATTEMPTS = 5  # transactions per request that keeps losing to concurrent ones
_FORMAT = "tidings"


SECURE_DELETE_PRAGMA = {"fast": "FAST", "on": "ON", "off": "OFF"}
# What the WAL file keeps after a checkpoint resets it: without a limit it
# stays as large as the largest transaction ever written, until the last
# connection closes.
JOURNAL_SIZE_LIMIT = 16 << 20


def connect(path: str, busy_timeout_s: float, secure_delete: str = "fast") -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves).

    ``secure_delete``: ``fast`` (default) zeroes deleted content only in
    pages that are written anyway; ``on`` overwrites every freed page (full
    erasure, about twice the bytes written for deletes); ``off`` leaves
    deleted bytes in free pages. Chosen here because SQLite builds differ.

    A file that is not a tidings database is refused before anything is
    written to it (WAL mode rewrites the file header): see :func:`refuse_foreign`."""
    refuse_foreign(path)
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # A new file: only now (before any page is written) can the file
            # be made to give space back (see vacuum.py).
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        raise EngineUnavailable(
            f"{path} cannot be opened as a tidings database ({exc}); "
            "check the path, or point --url at a new file"
        ) from exc
    for pragma in (
        "synchronous=FULL",
        "foreign_keys=OFF",
        "wal_autocheckpoint=4000",
        f"secure_delete={SECURE_DELETE_PRAGMA[secure_delete]}",
        f"journal_size_limit={JOURNAL_SIZE_LIMIT}",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


_VERIFIED: set[str] = set()  # real paths of files seen holding a tidings schema


def refuse_foreign(path: str) -> None:
    """Raise :class:`EngineUnavailable` if ``path`` holds something other
    than a tidings database (a new, empty or tidings file passes), reading
    only: a file that is not ours is never modified, not even its header.

    The file is only ever opened through SQLite: closing a descriptor of
    our own on it would drop the POSIX locks every SQLite connection of
    this process holds on the same file."""
    if path == ":memory:" or path.startswith("file:"):
        return
    real = os.path.realpath(path)
    if real in _VERIFIED or not os.path.exists(real) or os.path.getsize(real) == 0:
        return
    tables = _tables(real, path)
    if "tidings_meta" in tables:
        _VERIFIED.add(real)
    elif tables:
        raise EngineUnavailable(
            f"{path} is an SQLite database but not a tidings one "
            f"(it has tables {sorted(tables)[:5]}); use another file"
        )


def _tables(real: str, path: str) -> set[str]:
    """The table names in the file, read without writing anything: first
    immutable (no locks, no -wal/-shm files created beside a WAL-mode
    database), then, should that read fail (a page changing under it),
    read-only with locks. A read-write connection would, for instance,
    roll back someone else's hot journal. What only a -wal file holds is
    not seen here; ensure_schema checks again once the file is open."""
    failure: sqlite3.Error | None = None
    for mode in ("ro&immutable=1", "ro"):
        try:
            probe = sqlite3.connect(f"file:{urllib.parse.quote(real)}?mode={mode}", uri=True)
            try:
                rows = probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
                return {r[0] for r in rows}
            finally:
                probe.close()
        except sqlite3.Error as exc:
            failure = exc
    raise EngineUnavailable(
        f"{path} cannot be opened as a tidings database ({failure}); "
        "check the path, or point --url at a new file"
    ) from failure


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file; refuse files that are not ours
    (checked again here: another process may have created tables since)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and "tidings_meta" not in tables:
        raise EngineUnavailable(
            f"{path} is an SQLite database but not a tidings one "
            f"(it has tables {sorted(tables)[:5]}); use another file"
        )
    if not tables:
        script = resources.files(__package__).joinpath("schema_sqlite.sql").read_text()
        conn.executescript(f"BEGIN IMMEDIATE;{script};COMMIT;")
    if _version(conn, path) < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:  # another process may have upgraded while we waited for the lock
            upgrade(conn.execute, "sqlite", _version(conn, path))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _version(conn: sqlite3.Connection, path: str) -> int:
    row = conn.execute("SELECT value FROM tidings_meta WHERE key='schema_version'").fetchone()
    if row is None or int(row[0]) > SCHEMA_VERSION:
        raise EngineUnavailable(
            f"{path} has tidings schema version {row and row[0]}, this tidings "
            f"understands up to {SCHEMA_VERSION}: upgrade tidings"
        )
    return int(row[0])


class Session(Protocol):
    """What the :class:`Writer` needs from one database's write connection."""

    conn: Any

    def begin(self, fsync: bool, locks: list[LockKey]) -> None:
        """Start a write transaction, durable (fsync) or not, and lock the
        rows ``locks`` names in that order (nothing to do where the
        transaction holds the whole database)."""

    def commit(self, channels: set[str]) -> None:
        """Commit; engines that notify inside the transaction do it here."""

    def rollback(self) -> None: ...

    def translate(self, exc: BaseException) -> BaseException:
        """Driver error → tidings error (``__cause__`` kept)."""
        ...


Combine = Callable[[Any, list[Any]], list[Any]]
# A row a request will lock: ("group", name), ("partition", topic id, n) or
# ("queue", name). Sorted, they give the order every transaction locks in.
LockKey = tuple[str, str] | tuple[str, int, int]


class _Request(Generic[T]):
    __slots__ = ("channels", "done", "error", "fn", "fsync", "locks", "merge", "value")

    def __init__(
        self,
        fn: Callable[[Any], T],
        fsync: bool,
        channels: tuple[str, ...],
        merge: tuple[object, Any, Combine] | None = None,
        locks: tuple[LockKey, ...] = (),
    ):
        self.fn, self.fsync, self.channels, self.merge = fn, fsync, channels, merge
        self.locks = locks
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None


class Writer:
    """Serialises and groups write transactions from all threads of a process
    (leader/follower group commit)."""

    def __init__(self, session: Session, on_commit: Callable[[set[str]], None]) -> None:
        self._session = session
        self._on_commit = on_commit
        self._cond = threading.Condition()
        self._leading = False
        self._last_batch = 1
        self._queue: list[_Request[object]] = []

    def run(
        self,
        fn: Callable[[Any], T],
        fsync: bool = True,
        channels: tuple[str, ...] = (),
        merge: tuple[object, Any, Combine] | None = None,
        locks: tuple[LockKey, ...] = (),
    ) -> T:
        """Run ``fn(conn)`` in a write transaction; return once committed.

        ``locks`` names the rows ``fn`` will lock: a group commit locks
        the rows of all its requests first, in one global order (sorted
        keys), so two processes' transactions cannot deadlock on them.

        Requests queue while a leader commits; when it is done, the next
        thread whose request is still pending leads and commits everything
        that queued meanwhile in one transaction. Requests with the same
        ``merge`` key ``(key, payload, combine)`` are executed together as
        ``combine(conn, payloads)`` (e.g. eight single publishes become one
        eight-message insert); should that fail, each runs alone."""
        req = _Request(fn, fsync, channels, merge, locks)
        with self._cond:
            self._queue.append(req)  # type: ignore[arg-type]
            self._cond.notify_all()  # a gathering leader may be waiting for us
            while not req.done and self._leading:
                self._cond.wait()
            if req.done:
                return _outcome(req)
            self._leading = True
            self._gather()
            batch, self._queue = self._queue, []
        try:
            self._commit_batch(batch)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return _outcome(req)

    def _gather(self) -> None:
        """While several threads are committing, wait a moment (at most
        ``GATHER_S``) until as many requests queued as last time: they
        arrive microseconds apart, and one fsync for all beats one each."""
        deadline = time.monotonic() + GATHER_S
        while len(self._queue) < self._last_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        self._last_batch = len(self._queue)

    def _commit_batch(self, batch: list[_Request[object]]) -> None:
        """Commit the batch; requests that lost to a concurrent transaction
        (EngineConflict: a deadlock, a serialization failure; nothing of
        theirs was written) run again in a new transaction, so one thread's
        deadlock never fails the other requests of the group, nor (up to
        ``CONFLICT_ATTEMPTS``) its own."""
        pending = batch
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                self._commit_once(pending)
            finally:
                retry = (
                    [r for r in pending if _lost_conflict(r)] if attempt < CONFLICT_ATTEMPTS else []
                )
                for req in pending:
                    req.done = req not in retry
            if not retry:
                return
            with self._cond:  # the requests that are done need not wait for the retry
                self._cond.notify_all()
            log.warning(
                "%d of %d requests lost to a concurrent transaction, running them again: %s",
                len(retry), len(pending), retry[0].error,
            )  # fmt: skip
            for req in retry:
                req.error = req.value = None
            pending = retry
            time.sleep(full_jitter(attempt, 0.0025, 0.1))  # full jitter: let the winner commit

    def _commit_once(self, batch: list[_Request[object]]) -> None:
        session = self._session
        channels: set[str] = set()
        try:
            locks = sorted({key for r in batch for key in r.locks})
            # One row alone cannot be taken in the wrong order.
            session.begin(any(r.fsync for r in batch), locks if len(locks) > 1 else [])
            if len(batch) == 1:  # alone: no savepoint needed, its failure is the txn's
                batch[0].value = batch[0].fn(session.conn)
            else:
                self._run_all(batch)
            channels = {c for r in batch if r.error is None for c in r.channels}
            session.commit(channels)
        except BaseException as exc:  # the whole transaction failed
            session.rollback()
            err = session.translate(exc)
            for req in batch:
                req.error = req.error or err
            channels = set()
        if channels:
            self._on_commit(channels)

    def _run_all(self, batch: list[_Request[object]]) -> None:
        merged: dict[object, list[_Request[object]]] = {}
        for req in batch:
            if req.merge is None:
                self._run_one(req)
            else:
                merged.setdefault(req.merge[0], []).append(req)
        for group in merged.values():
            self._run_merged(group)

    def _run_merged(self, group: list[_Request[object]]) -> None:
        if len(group) == 1:
            self._run_one(group[0])
            return
        conn = self._session.conn
        combine = group[0].merge[2]  # type: ignore[index]
        conn.execute("SAVEPOINT merged")
        try:
            values = combine(conn, [r.merge[1] for r in group])  # type: ignore[index]
        except Exception:
            conn.execute("ROLLBACK TO SAVEPOINT merged")
            conn.execute("RELEASE SAVEPOINT merged")
            for req in group:  # one of them is bad: find out which, alone
                self._run_one(req)
            return
        conn.execute("RELEASE SAVEPOINT merged")
        for req, value in zip(group, values, strict=True):
            req.value = value

    def _run_one(self, req: _Request[object]) -> None:
        conn = self._session.conn
        conn.execute("SAVEPOINT req")
        try:
            req.value = req.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO SAVEPOINT req")
            req.error = self._session.translate(exc)
        conn.execute("RELEASE SAVEPOINT req")


def _lost_conflict(req: _Request[object]) -> bool:
    return isinstance(req.error, EngineConflict)


def _outcome(req: _Request[T]) -> T:
    if req.error is not None:
        raise req.error
    return req.value  # type: ignore[return-value]


class SQLiteSession:
    """The SQLite side of a :class:`Writer`: ``BEGIN IMMEDIATE`` with retry,
    ``synchronous`` switched per transaction."""

    def __init__(self, conn: sqlite3.Connection, lock_timeout_s: float) -> None:
        self.conn = conn
        self._lock_timeout = lock_timeout_s
        self._sync_mode = "FULL"

    def begin(self, fsync: bool, locks: list[LockKey]) -> None:
        # BEGIN IMMEDIATE holds the whole file: no row to lock in order.
        mode = "FULL" if fsync else "NORMAL"
        if mode != self._sync_mode:
            self.conn.execute(f"PRAGMA synchronous={mode}")
            self._sync_mode = mode
        deadline = time.monotonic() + self._lock_timeout
        backoff = Backoff(0.0001, 0.005)  # jittered: processes contending for the lock spread out
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise EngineTimeout(
                        f"the database stayed locked by another process for "
                        f"{self._lock_timeout:.0f}s"
                    ) from exc
                time.sleep(backoff.next())

    def commit(self, channels: set[str]) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def translate(self, exc: BaseException) -> BaseException:
        return translate(exc)


def translate(exc: BaseException) -> BaseException:
    """sqlite3 error → tidings error; anything else is returned unchanged."""
    if isinstance(exc, TidingsError) or not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        err: TidingsError = EngineTimeout(f"the database is locked: {exc}")
    elif isinstance(exc, sqlite3.OperationalError) and ("disk" in text or "full" in text):
        err = EngineUnavailable(f"the database cannot be written: {exc}")
    else:
        err = EngineProtocolError(f"SQLite error: {exc}")
    err.__cause__ = exc
    return err
