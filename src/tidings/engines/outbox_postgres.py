"""The relay's connection to an application database on PostgreSQL.

One autocommit connection for reads and fenced writes, one LISTEN
connection for wake-ups: the writer's ``pg_notify`` is delivered only
when the writer's transaction commits. ``?schema=NAME`` in the URL sets
the ``search_path`` (the outbox tables live where the application's do).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors

from ..config import validate_name
from ..errors import EngineProtocolError, EngineUnavailable, TidingsError

NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")
_SCHEMA_STATES = {"42P01", "42883", "42703"}
_MIGRATION_LOCK = 0x7E1D0B0C  # one advisory lock key for outbox migrations


def split_url(url: str) -> tuple[str, str | None]:
    """(libpq conninfo URL, schema) with ``schema=`` removed from the query."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


def render(sql: str) -> str:
    """Shared statement text → psycopg: ``{now}``, ``:name`` → ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("{now}", NOW))


def translate(exc: psycopg.Error) -> TidingsError:
    if getattr(exc, "sqlstate", None) in _SCHEMA_STATES:
        from ..outbox.errors import OutboxSchemaError

        return OutboxSchemaError(f"{exc}: run `tidings outbox migrate --db URL`")
    if isinstance(exc, (psycopg.OperationalError, psycopg.errors.AdminShutdown)):
        return EngineUnavailable(f"the outbox database is unavailable: {exc}")
    return EngineProtocolError(f"the outbox database failed: {exc}")


def _connect(conninfo: str, schema: str | None) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
        if schema:
            conn.execute(f'SET search_path TO "{validate_name("schema", schema)}"')
    except psycopg.Error as exc:
        raise EngineUnavailable(f"cannot connect to the outbox database: {exc}") from exc
    return conn


class PgOutboxDb:
    """See :class:`tidings.outbox.db.OutboxDb`; reconnects after a failure."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._conninfo, self._schema = split_url(url)
        self._conn: psycopg.Connection[Any] | None = _connect(self._conninfo, self._schema)
        self._listener: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = _connect(self._conninfo, self._schema)
        return self._conn

    def query(self, sql: str, params: Mapping[str, Any] = {}) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(render(sql), params).fetchall()
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def execute(self, sql: str, params: Mapping[str, Any] = {}) -> int:
        try:
            return self.conn.execute(render(sql), params).rowcount
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def script(self, statements: Sequence[str]) -> None:
        try:
            for statement in statements:
                self.conn.execute(statement)  # DDL: no parameters, no rendering
        except psycopg.Error as exc:
            raise translate(exc) from exc

    @contextlib.contextmanager
    def transaction(self, lock: bool = False) -> Iterator[None]:
        try:
            with self.conn.transaction():
                if lock:
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                yield
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT to_regclass(:n) IS NOT NULL", {"n": name})
        return bool(rows[0][0])

    def _listen(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed or self._listener.broken:
            from ..outbox.schema import NOTIFY_CHANNEL

            self._listener = _connect(self._conninfo, None)
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._listener

    def wait(self, timeout: float) -> bool:
        """LISTEN was issued before the first read, so a commit after that
        read is never missed; several notifications are drained at once."""
        try:
            listener = self._listen()
            got = any(True for _ in listener.notifies(timeout=timeout, stop_after=1))
            if got:
                for _ in listener.notifies(timeout=0):  # drain the rest
                    pass
            return got
        except psycopg.Error as exc:
            self._listener = None
            raise translate(exc) from exc

    def close(self) -> None:
        for conn in (self._conn, self._listener):
            if conn is not None:
                conn.close()
