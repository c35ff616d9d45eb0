"""Handlers whose state lives in the engine's own database (R5): the
handler's writes, and the offset commit or queue ack of its message, in ONE
transaction of that database — an exactly-once effect, with no inbox.

::

    import sqlite3
    from tidings.runtime import App

    app = App("billing")

    @app.handler(topic="payments", transaction=lambda: sqlite3.connect("bus.db"))
    def on_payment(payment: dict, ctx) -> None:
        ctx.connection.execute("UPDATE accounts SET ...")   # same transaction

Per message (per batch for batch handlers) the runtime opens a transaction
on ``connect()``'s connection (one per handler thread), runs the handler
with it as ``ctx.connection``, then, in that same transaction, commits the
record's offset (fenced: a member that lost the partition writes nothing)
or acks the delivery (its lease checked), and commits. Rolled back —
the handler raised, returned Retry/Reject, or lost its partition or lease —
nothing of it is stored, and the message comes again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError, UnsupportedFeature
from .handlers import HandlerContext

#: Writes the message's commit or ack on the connection, in its open transaction.
Settle = Callable[[Any, Any], None]
#: Told a message's transaction committed (the topic loop remembers its offset).
Committed = Callable[[Any], None]


class EngineTransaction:
    """One connection per handler thread from ``connect()``; the middleware."""

    def __init__(self, connect: Callable[[], Any], settle: Settle, committed: Committed) -> None:
        self.connect, self.settle, self.committed = connect, settle, committed
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def connection(self) -> Any:
        """This thread's connection, in an open transaction."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _checked(self.connect())
            with self._lock:
                self._open.append(conn)
            self._local.conn = conn
        if isinstance(conn, sqlite3.Connection) and not conn.in_transaction:
            # Take the write lock first: a transaction that read before
            # writing could not upgrade once an engine writer committed.
            conn.execute("BEGIN IMMEDIATE")
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # another thread's sqlite3 connection: best effort
                pass

    def probe(self) -> None:
        """Open one connection and check it (at start, so a misconfigured
        ``transaction=`` stops the handler instead of failing every message)."""
        conn = _checked(self.connect())
        conn.close()

    def _rollback(self, conn: Any) -> None:
        """Roll back; a connection that cannot (the server went away) is
        dropped, and the next message opens a new one."""
        try:
            conn.rollback()
            broken = bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))
        except Exception:
            broken = True
        if broken:
            self._local.conn = None

    def _finish(self, conn: Any, ctx: HandlerContext, out: Any) -> Any:
        from .lanes import _failed

        if _failed(out):
            conn.rollback()
            return out
        self.settle(conn, ctx.message)
        conn.commit()
        self.committed(ctx.message)
        return out

    def middleware(self, is_async: bool) -> Callable[..., Any]:
        """Innermost middleware: the handler and the commit/ack, one transaction."""

        def run(ctx: HandlerContext, call_next: Callable[[HandlerContext], Any]) -> Any:
            conn = ctx.connection = self.connection()
            try:
                return self._finish(conn, ctx, call_next(ctx))
            except BaseException:
                self._rollback(conn)
                raise

        async def arun(ctx: HandlerContext, call_next: Callable[[HandlerContext], Any]) -> Any:
            conn = ctx.connection = self.connection()
            try:
                return self._finish(conn, ctx, await call_next(ctx))
            except BaseException:
                self._rollback(conn)
                raise

        return arun if is_async else run


def _checked(conn: Any) -> Any:
    """A connection in autocommit mode would commit the handler's writes
    one by one, apart from the commit/ack: refused."""
    # (A sqlite3 connection with isolation_level=None is fine: the runtime
    # opens each transaction itself with BEGIN IMMEDIATE.)
    if getattr(conn, "autocommit", False) is True:
        conn.close()
        raise ConfigurationError(
            "transaction=: the connection is in autocommit mode; return one that opens "
            "transactions (sqlite3 default isolation_level, psycopg autocommit=False)"
        )
    return conn


def engine_transaction(
    spec: Any, engine: Any, settle: Settle, committed: Committed
) -> EngineTransaction | None:
    """The handler's :class:`EngineTransaction`, or None without
    ``transaction=``. Raises UnsupportedFeature on an engine that cannot
    commit or ack in the caller's transaction, ConfigurationError for an
    autocommit connection, and what ``connect()`` raises."""
    if spec.transaction is None:
        return None
    if not engine.features.supports("transactional_consume"):
        raise UnsupportedFeature(
            f"{engine.url}: handler {spec.name} has transaction=, but this engine cannot "
            "commit or ack in your transaction; use a SQL engine (or an Inbox)"
        )
    tx = EngineTransaction(spec.transaction, settle, committed)
    tx.probe()
    return tx


def as_list(message: Any) -> list[Any]:
    """A batch handler's messages, or a single message as a list."""
    return message if isinstance(message, list) else [message]
