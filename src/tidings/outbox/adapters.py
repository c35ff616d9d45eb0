"""Running one writer statement on whatever connection the caller holds.

Told apart by the connection's class module, so no driver is imported
here: ``sqlite3``, ``aiosqlite`` and ``psycopg`` connections are used
directly (the same ``execute`` shape); SQLAlchemy sessions and connections
go through :mod:`tidings.engines.outbox_sqlalchemy`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import ConfigurationError
from .errors import OutboxSchemaError
from .writer import is_schema_error, pg_params

Row = tuple[Any, ...]
BySql = Mapping[str, str]
_PSYCOPG_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE


class SyncAdapter(Protocol):
    def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None: ...


class AsyncAdapter(Protocol):
    async def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None: ...


def _kind(conn: Any) -> str:
    return type(conn).__module__.split(".", 1)[0]


def _unsupported(conn: Any, flavour: str) -> ConfigurationError:
    return ConfigurationError(
        f"{flavour} cannot write through a {type(conn).__module__}.{type(conn).__name__}: "
        "pass a sqlite3 / psycopg connection or a SQLAlchemy Session / Connection "
        "(AsyncOutbox: psycopg AsyncConnection, aiosqlite, SQLAlchemy AsyncSession)"
    )


def _no_transaction() -> ConfigurationError:
    return ConfigurationError(
        "the connection has no open transaction, so the event would commit alone: "
        "begin one first (BEGIN, `with conn.transaction():`, or a non-autocommit connection)"
    )


def _schema_error(exc: BaseException) -> BaseException:
    if is_schema_error(exc):
        err = OutboxSchemaError(f"{exc}: run `tidings outbox migrate --db URL`")
        err.__cause__ = exc
        return err
    return exc


def _check_sqlite(conn: Any) -> None:
    autocommit = getattr(conn, "autocommit", None)
    if conn.in_transaction or autocommit is False:
        return
    if autocommit is True or conn.isolation_level is None:
        raise _no_transaction()


def _check_psycopg(conn: Any) -> None:
    if conn.autocommit and conn.info.transaction_status == _PSYCOPG_IDLE:
        raise _no_transaction()


class _Sqlite3:
    def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        _check_sqlite(conn)
        try:
            row: Row | None = conn.execute(sql["sqlite"], params).fetchone()
        except Exception as exc:
            raise _schema_error(exc) from exc
        return row


class _Psycopg:
    def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        _check_psycopg(conn)
        try:
            row: Row | None = conn.execute(pg_params(sql["postgresql"]), params).fetchone()
        except Exception as exc:
            raise _schema_error(exc) from exc
        return row


class _AioSqlite:
    async def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        _check_sqlite(conn)
        try:
            cursor = await conn.execute(sql["sqlite"], params)
            row: Row | None = await cursor.fetchone()
        except Exception as exc:
            raise _schema_error(exc) from exc
        return row


class _AsyncPsycopg:
    async def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        _check_psycopg(conn)
        try:
            cursor = await conn.execute(pg_params(sql["postgresql"]), params)
            row: Row | None = await cursor.fetchone()
        except Exception as exc:
            raise _schema_error(exc) from exc
        return row


class _SqlAlchemy:
    def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        from ..engines.outbox_sqlalchemy import first

        try:
            return first(conn, sql, params)
        except Exception as exc:
            raise _schema_error(exc) from exc


class _AsyncSqlAlchemy:
    async def first(self, conn: Any, sql: BySql, params: Mapping[str, Any]) -> Row | None:
        from ..engines.outbox_sqlalchemy import first_async

        try:
            return await first_async(conn, sql, params)
        except Exception as exc:
            raise _schema_error(exc) from exc


_SYNC: dict[str, SyncAdapter] = {
    "sqlite3": _Sqlite3(),
    "psycopg": _Psycopg(),
    "sqlalchemy": _SqlAlchemy(),
}
_ASYNC: dict[str, AsyncAdapter] = {
    "aiosqlite": _AioSqlite(),
    "psycopg": _AsyncPsycopg(),
    "sqlalchemy": _AsyncSqlAlchemy(),
}


def sync_adapter(conn: Any) -> SyncAdapter:
    """The adapter for a blocking connection; raises ConfigurationError."""
    adapter = _SYNC.get(_kind(conn))
    if adapter is None or "Async" in type(conn).__name__:
        raise _unsupported(conn, "Outbox")
    return adapter


def async_adapter(conn: Any) -> AsyncAdapter:
    """The adapter for an async connection; raises ConfigurationError."""
    kind = _kind(conn)
    adapter = _ASYNC.get(kind)
    if adapter is None or (kind != "aiosqlite" and "Async" not in type(conn).__name__):
        raise _unsupported(conn, "AsyncOutbox")
    return adapter
