"""``postgresql://host/db`` — the same SQL stores on a database many hosts share.

* Statements are the SQLite ones, translated once per text by
  :func:`translate_sql` (placeholders, two-argument ``max``/``min``,
  ``/*for update*/`` and ``/*skip locked*/`` markers).
* Writes go through the same group-commit :class:`Writer` as SQLite, on one
  connection per process; ``fsync=False`` requests commit with
  ``synchronous_commit=off``.
* Wake-ups (``pg_wake.py``): ``pg_notify`` after the commit, from a thread
  of the client, only for channels some client waits on (an advisory lock
  says so); one listener thread per engine fans them out to local waiters.
* A broken connection (database restart, failover) fails the call with a
  retriable :class:`EngineUnavailable` and is replaced on the next call.
  libpq multi-host URLs with ``target_session_attrs=read-write`` make the
  new connection follow a promoted standby.

* Connections per process: one writer, one listener, one holding the
  waiters' advisory locks (once something waits), at most ``pool_size``
  readers shared by all threads, and one for a moment during the
  maintenance round.

URL options (removed before the URL reaches libpq): ``schema=NAME`` keeps
tidings' tables in that schema (created if missing); ``pool_size=N``
(default 4) bounds the read connections; ``maintenance_interval``.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import sql

from ...backoff import full_jitter
from ...config import parse_duration, validate_name
from ...errors import (
    ConfigurationError,
    EngineConflict,
    EngineProtocolError,
    EngineStorageFull,
    EngineTimeout,
    EngineUnavailable,
    TidingsError,
)
from ...features import Features
from ...groups.stored import StoredGroups
from ...ports.engine import MaintenanceStatus
from ..cursor import PollingCursor, log_channels
from ..maintenance import Maintainer
from ..memory.waiter import MemoryWaiters
from .clock import DbClock
from .database import CONFLICT_ATTEMPTS, LockKey, Writer
from .dialect import Dialect
from .failed import SqlFailedStore, store_beside
from .log import SqlLog, read_retrying
from .maintenance import claim_maintenance
from .migrations import SCHEMA_VERSION, upgrade
from .pg_wake import CHANNEL, Listener, Presence, WakeSender
from .pgtext import copy_text, int_array
from .queue import SqlQueues

log = logging.getLogger("tidings.postgres")
_OURS = ("schema", "maintenance_interval", "pool_size")  # URL options libpq never sees
T = TypeVar("T")
_SCALAR = re.compile(r"\b(max|min)\(([^()]*,[^()]*)\)")


@functools.lru_cache(maxsize=1024)
def translate_sql(sql: str) -> str:
    """SQLite-dialect statement → PostgreSQL."""
    out = sql.replace("%", "%%").replace("?", "%s")
    out = _SCALAR.sub(lambda m: ("greatest" if m[1] == "max" else "least") + f"({m[2]})", out)
    return out.replace("/*for update*/", "FOR UPDATE").replace(
        "/*skip locked*/", "FOR UPDATE SKIP LOCKED"
    )


class PgConnection:
    """A psycopg connection that speaks the SQLite dialect of our stores."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    @classmethod
    def open(cls, conninfo: str, schema: str | None) -> PgConnection:
        try:
            raw = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise EngineUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        if schema:
            raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            raw.execute(f'SET search_path TO "{schema}"')
        # Every tidings query is a point lookup or an ordered index range
        # (claims: ORDER BY visible_at LIMIT n). On young tables without
        # statistics the planner picks bitmap scan + sort over the whole
        # backlog instead (measured: 11 ms vs 0.1 ms per claim at 20k rows).
        raw.execute("SET enable_bitmapscan TO off")
        return cls(raw)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(translate_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor[Any]:
        """Like sqlite3's: the returned cursor's ``rowcount`` is the total."""
        cur = self.raw.cursor()
        cur.executemany(translate_sql(sql), rows)
        return cur

    def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert with COPY: one round trip, no per-row statement."""
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def copy_columns(
        self, table: str, names: Sequence[str], columns: Sequence[Sequence[int] | Sequence[bytes]]
    ) -> None:
        """Bulk insert given column by column (:func:`pgtext.copy_text`):
        one round trip, and no Python call per row as ``write_row`` has."""
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy,
        ):
            copy.write(copy_text(columns))

    def db_now_ms(self) -> int:
        """The server's clock now, in ms since the epoch (one round trip)."""
        return round(_db_time(self) * 1000)

    @property
    def broken(self) -> bool:
        return self.raw.broken or self.raw.closed

    def close(self) -> None:
        self.raw.close()


# SQLSTATE (or its two-character class) → what it means for the caller.
_BY_SQLSTATE: dict[str, tuple[type[TidingsError], str]] = {
    "40001": (EngineConflict, "PostgreSQL aborted the transaction (serialization failure)"),
    "40P01": (EngineConflict, "PostgreSQL aborted the transaction (deadlock)"),
    "57014": (EngineTimeout, "PostgreSQL cancelled the statement (statement_timeout)"),
    "55P03": (EngineTimeout, "PostgreSQL could not take a lock in time (lock_timeout)"),
    "53100": (EngineStorageFull, "PostgreSQL's disk is full"),
    "25006": (EngineUnavailable, "PostgreSQL is read-only here (a standby?)"),
    "57P01": (EngineUnavailable, "PostgreSQL is shutting down"),
    "57P02": (EngineUnavailable, "PostgreSQL is shutting down"),
    "57P03": (EngineUnavailable, "PostgreSQL is not accepting connections yet"),
    "08": (EngineUnavailable, "PostgreSQL is unavailable"),  # connection exceptions
    "53": (EngineUnavailable, "PostgreSQL is out of resources"),  # memory, connections
    "58": (EngineUnavailable, "PostgreSQL had a system error"),  # I/O
}


def translate(exc: BaseException) -> BaseException:
    """psycopg error → tidings error by SQLSTATE; anything else is returned
    unchanged. An OperationalError without SQLSTATE comes from the client
    side of a lost connection."""
    if isinstance(exc, TidingsError) or not isinstance(exc, psycopg.Error):
        return exc
    state = exc.sqlstate or ""
    found = _BY_SQLSTATE.get(state) or _BY_SQLSTATE.get(state[:2])
    if found is None and not state and isinstance(exc, psycopg.OperationalError):
        found = (EngineUnavailable, "PostgreSQL is unavailable")
    kind, what = found or (EngineProtocolError, "PostgreSQL error")
    err = kind(f"{what}: {exc}" + (f" [SQLSTATE {state}]" if state else ""))
    err.__cause__ = exc
    return err


def _notify_in(conn: PgConnection, channel: str) -> None:
    conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, channel))


@contextmanager
def borrow(raw: psycopg.Connection[Any], schema: str | None = None) -> Iterator[PgConnection]:
    """The caller's connection, running our statements on the tables in
    ``schema`` whatever its ``search_path``; the path is put back on exit.

    Inside the caller's transaction the change is ``SET LOCAL``-like (it
    would end with the transaction anyway); in autocommit mode it is a
    session setting, restored at once. One round trip each way."""
    if schema is None:
        yield PgConnection(raw)
        return
    local = raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    row = raw.execute(_SWAP_PATH, (f'"{schema}"', local)).fetchone()
    try:
        yield PgConnection(raw)
    finally:
        # A failed transaction cannot run the restore; its ROLLBACK will
        # (a local setting ends with it).
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.INERROR and row:
            raw.execute("SELECT set_config('search_path', %s, %s)", (row[0], local))


# The subquery in FROM runs first: the old path is read before it is set.
_SWAP_PATH = (
    "SELECT old.path, set_config('search_path', %s, %s) "
    "FROM (SELECT current_setting('search_path') AS path) AS old"
)

POSTGRES = Dialect("postgresql", translate=translate, borrow=borrow, notify_in=_notify_in)


# FOR UPDATE locks rows as the sort hands them up: in ORDER BY order.
_LOCK_GROUPS = "SELECT 1 FROM groups WHERE name = ANY({}::text[]) ORDER BY name FOR UPDATE"
_LOCK_QUEUES = "SELECT 1 FROM queues WHERE name = ANY({}::text[]) ORDER BY name FOR UPDATE"
_LOCK_PARTITIONS = (
    "SELECT 1 FROM partitions p JOIN unnest({}::bigint[], {}::int[]) AS k(t, n) "
    "ON p.topic_id = k.t AND p.partition = k.n ORDER BY p.topic_id, p.partition FOR UPDATE OF p"
)


def _row_locks(keys: list[LockKey]) -> list[sql.Composable]:
    """Statements locking the rows ``keys`` names in one global order (keys
    sorted: groups, then partitions by topic id, then queues by name). Rows
    the requests lock again later are already ours: two writers'
    transactions can no longer hold one row each and wait for the other's."""
    groups = [k[1] for k in keys if k[0] == "group"]
    parts = [(k[1], k[2]) for k in keys if len(k) == 3]  # ("partition", topic id, n)
    queues = [k[1] for k in keys if k[0] == "queue"]
    out: list[sql.Composable] = []
    if groups:
        out.append(sql.SQL(_LOCK_GROUPS).format(sql.Literal(groups)))
    if parts:
        topics, numbers = int_array(t for t, _ in parts), int_array(n for _, n in parts)
        out.append(sql.SQL(_LOCK_PARTITIONS).format(sql.Literal(topics), sql.Literal(numbers)))
    if queues:
        out.append(sql.SQL(_LOCK_QUEUES).format(sql.Literal(queues)))
    return out


class PgSession:
    """The PostgreSQL side of a :class:`Writer`; reconnects when broken."""

    def __init__(self, connect: partial[PgConnection]) -> None:
        self._connect = connect
        self.conn = connect()

    def begin(self, fsync: bool, locks: list[LockKey]) -> None:
        if self.conn.broken:
            self.conn.close()
            self.conn = self._connect()
        # One round trip (a simple-query string). Without fsync the commit
        # does not wait for the WAL flush: a crash of the server may forget
        # the last acks or leases (a redelivery), never a publish or record
        # that was acknowledged, which always asks for fsync.
        parts = [sql.SQL("BEGIN" if fsync else "BEGIN; SET LOCAL synchronous_commit TO off")]
        self.conn.raw.execute(sql.SQL("; ").join(parts + _row_locks(locks)))

    def commit(self, channels: set[str]) -> None:
        # The wake-ups go after the commit (the Writer hands the channels
        # to WakeSender): a transaction that notifies holds PostgreSQL's
        # notify lock through its WAL flush.
        self.conn.raw.execute("COMMIT")

    def rollback(self) -> None:
        if not self.conn.broken:
            try:
                self.conn.execute("ROLLBACK")
            except psycopg.Error:
                pass

    def translate(self, exc: BaseException) -> BaseException:
        return translate(exc)


def split_url(url: str) -> tuple[str, str | None]:
    """Take tidings' own options out of the URL; return (libpq URL, schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k not in _OURS]
    if schema is not None:
        validate_name("schema", schema)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    libpq = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), ""))
    try:  # libpq's own parser, without connecting: a bad option is the URL's fault
        psycopg.conninfo.conninfo_to_dict(libpq)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"PostgreSQL URL: {str(exc).strip()}; tidings reads "
            f"{', '.join(_OURS)}, libpq the others"
        ) from None
    return libpq, schema


def _positive_int(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(f"{name}={text!r} in the URL must be a whole number >= 1")
    return int(text)


def ensure_schema(conn: PgConnection) -> None:
    """Create the tables once and apply pending upgrades; an advisory lock
    keeps concurrent starters apart.

    An up-to-date schema is only read: DDL (even ``IF NOT EXISTS``) would
    wait for every open transaction that touched the tables."""
    version = _schema_version(conn)
    if version is not None and version > SCHEMA_VERSION:
        raise EngineUnavailable(
            f"the database has tidings schema version {version}; this tidings "
            f"understands up to {SCHEMA_VERSION}: upgrade tidings"
        )
    if version == SCHEMA_VERSION:
        return
    conn.raw.execute("SELECT pg_advisory_lock(7428291)")
    try:
        if _schema_version(conn) is None:
            script = resources.files(__package__).joinpath("schema_postgres.sql").read_text()
            for statement in script.split(";"):
                if statement.strip():
                    conn.raw.execute(statement)
        with conn.raw.transaction():
            upgrade(conn.raw.execute, "postgresql", _schema_version(conn) or 1)
    finally:
        conn.raw.execute("SELECT pg_advisory_unlock(7428291)")


def _schema_version(conn: PgConnection) -> int | None:
    if conn.raw.execute("SELECT to_regclass('tidings_meta')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT value FROM tidings_meta WHERE key='schema_version'").fetchone()
    return None if row is None else int(row[0])


# Tables whose rows die by the thousand (claims, acks, counters). Many
# servers run autovacuum rarely or not at all (it is off on some managed and
# test setups); a queue table that is never vacuumed slows every claim, as
# the claim index fills with dead entries.
_CHURNING = (
    "messages",
    "message_batches",
    "batch_payloads",
    "leases",
    "dedup",
    "queues",
    "partitions",
    "groups",
    "offsets",
    "batches",
)
_DEAD_MIN = 10_000  # dead rows before a table is worth a VACUUM ...
_DEAD_SHARE = 0.1  # ... and this share of its live rows


def vacuum_churned(connect: Callable[[], PgConnection]) -> list[str]:
    """VACUUM (ANALYZE) the tidings tables with many dead rows; return their
    names. VACUUM blocks no reader or writer; it runs on its own connection
    because it cannot run inside a transaction."""
    conn = connect()
    try:
        rows = conn.raw.execute(
            "SELECT relname, n_dead_tup, n_live_tup FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = ANY(%s)",
            (list(_CHURNING),),
        ).fetchall()
        due = [t for t, dead, live in rows if dead >= max(_DEAD_MIN, _DEAD_SHARE * live)]
        for table in due:
            conn.raw.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        return due
    finally:
        conn.close()


def _db_time(conn: PgConnection) -> float:
    """The server's clock (``clock_timestamp()``: now, not the transaction
    start), in seconds since the epoch."""
    cur = conn.raw.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
    return float(cur.fetchone()[0])  # type: ignore[index]


class AnnouncedWaiter:
    """A waiter whose channels are announced (:class:`Presence`) from its
    creation, before the caller's first re-read, until it is closed."""

    def __init__(
        self, inner: MemoryWaiters.Waiter, presence: Presence, channels: tuple[str, ...]
    ) -> None:
        presence.hold(channels)
        self._inner, self._presence, self._channels = inner, presence, channels
        self.arm, self.wait = inner.arm, inner.wait

    def close(self) -> None:
        self._inner.close()
        self._presence.release(self._channels)


class PostgresEngine:
    """PostgreSQL: logs shared by every host that reaches the database."""

    features = Features()

    def __init__(self, url: str) -> None:
        self.url = url
        conninfo, schema = split_url(url)
        options = dict(parse_qsl(urlsplit(url).query))
        interval = options.get("maintenance_interval", "60s")
        pool_size = _positive_int(options.get("pool_size", "4"), "pool_size")
        self._connect = partial(PgConnection.open, conninfo, schema)
        session = self._writer_session = PgSession(self._connect)
        ensure_schema(session.conn)
        self._local = threading.local()
        self._pool_size = pool_size
        self._next_slot = 0
        self._readers: dict[int, PgConnection] = {}
        self._lock = threading.Lock()
        self._wakes = WakeSender(self._reader)  # on a pooled connection
        self._writer = Writer(session, self._wakes.send)
        self._waiters = MemoryWaiters()
        listening = threading.Event()
        self._presence = Presence(self._connect, listening)
        self._listener = Listener(self._connect, self._waiters, self._presence.tick, listening)
        location = urlsplit(conninfo).netloc.rsplit("@", 1)[-1] + urlsplit(conninfo).path
        dialect = replace(POSTGRES, borrow=partial(borrow, schema=schema))
        self.clock = DbClock(partial(self._read, _db_time))  # one clock for every host
        self.log = SqlLog(self._writer, self._reader, location, dialect, self.clock)
        self.groups = StoredGroups(self.log)
        self.queues = SqlQueues(
            self._writer, self._read, dialect, self._oneshot, self.clock, self._wakes.send
        )
        self._maintainer = Maintainer(
            self.log,
            parse_duration(interval, "maintenance_interval"),
            partial(claim_maintenance, self._writer),
            lambda _local_now: self.queues.sweep_expired(self.clock.now_ms()),
            partial(vacuum_churned, self._connect),
        )
        self._maintainer.start()

    def _reader(self) -> PgConnection:
        """A read connection from a pool of at most ``pool_size``, shared by
        threads: psycopg connections are thread-safe, every read is one
        autocommit statement whose rows arrive with it, so threads only
        take turns per statement. A thread keeps its slot; a broken
        connection is replaced on the next read."""
        slot: int | None = getattr(self._local, "slot", None)
        if slot is None:
            with self._lock:
                slot = self._next_slot % self._pool_size
                self._next_slot += 1
            self._local.slot = slot
        conn = self._readers.get(slot)  # the common case, without the lock
        if conn is not None and not conn.broken:
            return conn
        with self._lock:
            conn = self._readers.get(slot)
            if conn is not None and conn.broken:
                conn.close()
                conn = None
            if conn is None:
                conn = self._readers[slot] = self._connect()
        return conn

    def _read(self, fn: Callable[[PgConnection], T]) -> T:
        return read_retrying(self._reader, fn, translate)

    def _oneshot(self, fn: Callable[[PgConnection], T]) -> T:
        """Run one self-committing statement (``pg_fast``) on this thread's
        pooled autocommit connection, beside the writer (it needs no
        transaction, so it does not queue behind the group commit). A
        broken connection is not retried (a write whose connection broke
        has an unknown outcome); a statement that lost to a concurrent
        transaction (deadlock, serialization failure) wrote nothing, and
        runs again."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return fn(self._reader())
            except psycopg.Error as exc:
                err = translate(exc)
                if not isinstance(err, EngineConflict) or attempt == CONFLICT_ATTEMPTS:
                    raise err from exc
            time.sleep(full_jitter(attempt, 0.0025, 0.1))  # full jitter
        raise AssertionError("unreachable")

    def waiter(self, channels: Collection[str]) -> AnnouncedWaiter:
        return AnnouncedWaiter(self._waiters.waiter(channels), self._presence, tuple(channels))

    def open_cursor(self, topics: Collection[str]) -> PollingCursor:
        return PollingCursor(self.log, partial(self.waiter, log_channels(topics)))

    def failed_store(self) -> SqlFailedStore:
        """The runtime's failed events, in this engine's database (R3)."""
        return store_beside(self.queues)

    def maintenance_status(self) -> MaintenanceStatus:
        return self._maintainer.status()

    def close(self) -> None:
        self._maintainer.stop()
        self._wakes.stop()
        self._listener.stop()
        self._presence.close()
        with self._lock:
            for conn in self._readers.values():
                conn.close()
            self._readers.clear()
        self._writer_session.conn.close()
