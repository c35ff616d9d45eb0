"""The relay's own connection to the application database.

Statements are written once with ``:name`` parameters and a ``{now}``
marker (the database's clock in milliseconds); each :class:`OutboxDb`
renders them for its driver. SQLite lives here (``sqlite3`` is in the
standard library); PostgreSQL in :mod:`tidings.engines.outbox_postgres`
(drivers are imported only under ``tidings.engines``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ..errors import ConfigurationError, EngineTimeout, EngineUnavailable, TidingsError

T = TypeVar("T")
Params = Mapping[str, Any]
_NO_PARAMS: Params = {}
SQLITE_NOW = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


class OutboxDb(Protocol):
    """One connection to the database holding the outbox tables. Errors
    are tidings errors (``EngineUnavailable`` when the database is down)."""

    dialect: str
    url: str

    def query(self, sql: str, params: Params = _NO_PARAMS) -> list[tuple[Any, ...]]: ...

    def execute(self, sql: str, params: Params = _NO_PARAMS) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def script(self, statements: Sequence[str]) -> None:
        """Run DDL statements as they are (inside :meth:`transaction`)."""
        ...

    def transaction(self, lock: bool = False) -> contextlib.AbstractContextManager[None]:
        """One transaction; ``lock`` also serialises it against every other
        ``lock`` transaction (migrations, re-dispatch)."""
        ...

    def has_table(self, name: str) -> bool: ...

    def wait(self, timeout: float) -> bool:
        """Block until an outbox event may have been committed by another
        connection (True) or ``timeout`` passed (False)."""
        ...

    def close(self) -> None: ...


def open_db(url: str, poll_s: float = 0.002, create: bool = False) -> OutboxDb:
    """The application database a URL names (``sqlite:///app.db``,
    ``postgresql://host/db[?schema=NAME]``); a SQLite file is created only
    with ``create`` (the migration). Raises ConfigurationError for another
    scheme, OutboxSchemaError for a missing SQLite file, EngineUnavailable
    when it cannot be opened."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return SqliteOutboxDb(url, poll_s, create=create)
    if scheme in ("postgresql", "postgres"):
        try:
            from ..engines.outbox_postgres import PgOutboxDb
        except ImportError as exc:
            raise ConfigurationError(
                "a PostgreSQL outbox needs psycopg: pip install 'tidings[postgres]'"
            ) from exc
        return PgOutboxDb(url)
    raise ConfigurationError(
        f"unsupported outbox database URL {url!r}: use sqlite:///path/app.db or "
        "postgresql://host/db (the application's database, not the engine's)"
    )


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("//"):
        raise ConfigurationError(f"expected sqlite:///path, got {url!r}")
    path = rest[3:].split("?", 1)[0]
    if not path:
        raise ConfigurationError(f"{url!r} names no file: use sqlite:///path/app.db")
    return path


def _file_uri(path: str, create: bool) -> str:
    return f"file:{urllib.parse.quote(path)}?mode={'rwc' if create else 'rw'}"


class SqliteOutboxDb:
    """SQLite: autocommit connection, ``BEGIN IMMEDIATE`` transactions, and
    change detection by polling ``PRAGMA data_version`` every ``poll_s``
    (it changes when another connection commits; a read costs microseconds)."""

    dialect = "sqlite"

    def __init__(
        self, url: str, poll_s: float = 0.002, busy_timeout_s: float = 30.0, create: bool = False
    ) -> None:
        self.url = url
        self._poll = poll_s
        self._busy_timeout = busy_timeout_s
        try:
            # timeout=0: SQLite's own busy handler sleeps up to 100 ms at a
            # time while the application holds the write lock; we retry
            # with sub-millisecond sleeps instead (see _retrying).
            self.conn = sqlite3.connect(
                _file_uri(sqlite_path(url), create),
                uri=True,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
            )
            # A lost progress mark re-forwards events with the same
            # idempotency keys (at-least-once): no fsync needed for it.
            self._first_statement("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            if not create and not os.path.exists(sqlite_path(url)):
                from .errors import OutboxSchemaError

                raise OutboxSchemaError(
                    f"{url}: no such database file: check --db (the application database) "
                    "or create the outbox with `tidings outbox migrate --db URL`"
                ) from exc
            raise EngineUnavailable(f"{url}: cannot open the database ({exc})") from exc
        self._seen = self._data_version()

    def _first_statement(self, sql: str) -> None:
        """The first statement of a new connection, retried while busy: when
        a process was killed mid-write, whoever opens the database next
        recovers its WAL under a brief exclusive lock (seen in a crash test:
        with a relay SIGKILLed mid-batch, ``outbox status`` failed at once)."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                self.conn.execute(sql)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(0.001)

    def query(self, sql: str, params: Params = _NO_PARAMS) -> list[tuple[Any, ...]]:
        text = sql.replace("{now}", SQLITE_NOW)
        return self._retrying(lambda: self.conn.execute(text, params).fetchall())

    def execute(self, sql: str, params: Params = _NO_PARAMS) -> int:
        text = sql.replace("{now}", SQLITE_NOW)
        return self._retrying(lambda: self.conn.execute(text, params).rowcount)

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; while another connection holds the write lock, retry
        every 0.1-2 ms (an application commit holds it for well under that)."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.0001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or self.conn.in_transaction or time.monotonic() > deadline:
                    raise translate_sqlite(exc) from exc
            except sqlite3.Error as exc:
                raise translate_sqlite(exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.002)

    def script(self, statements: Sequence[str]) -> None:
        for statement in statements:
            self.execute(statement)

    @contextlib.contextmanager
    def transaction(self, lock: bool = False) -> Iterator[None]:
        # BEGIN IMMEDIATE takes SQLite's one write lock: every write
        # transaction is serialised already, ``lock`` adds nothing.
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=:n", {"n": name})
        return bool(rows)

    def _data_version(self) -> int:
        return int(self.query("PRAGMA data_version")[0][0])

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            version = self._data_version()
            if version != self._seen:
                self._seen = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self._poll, left))

    def close(self) -> None:
        self.conn.close()


def translate_sqlite(exc: sqlite3.Error) -> TidingsError:
    """sqlite3 error → tidings error (the cause stays on ``__cause__``)."""
    text = str(exc)
    if "no such table" in text or "no such column" in text:
        from .errors import OutboxSchemaError

        return OutboxSchemaError(f"{text}: run `tidings outbox migrate --db URL`")
    if "locked" in text or "busy" in text:
        return EngineTimeout(f"the outbox database stayed locked: {exc}")
    return EngineUnavailable(f"the outbox database failed: {exc}")
