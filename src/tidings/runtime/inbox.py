"""The inbox (R5): ids of processed messages in *your* database, written in
the handler's own transaction.

::

    import sqlite3
    from tidings.runtime import App, Inbox

    inbox = Inbox(lambda: sqlite3.connect("shop.db"))

    @app.handler(topic="payments", inbox=inbox)
    def on_payment(payment: dict, ctx) -> None:
        ctx.connection.execute("UPDATE accounts SET ...")   # same transaction

Per message the inbox inserts ``(handler, message id)`` first (a duplicate
is skipped without calling the handler), runs the handler with
``ctx.connection`` in that open transaction, and commits: your changes and
the inbox row are committed together or not at all. The effect on that
database is therefore exactly once even though delivery is at least once
(a redelivery after a crash finds the id and is skipped). Effects outside
it (an e-mail, an HTTP call) stay at-least-once.

The message id is the ``idempotency-key`` header when the publisher set
one (the outbox relay does), else ``topic/partition/offset`` or
``queue/message id``. Rows older than ``retention`` are deleted (at most
once a minute); a redelivery older than that would be processed again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import parse_duration, validate_name
from ..errors import ConfigurationError
from ..message import Record
from .handlers import HandlerContext

IDEMPOTENCY_HEADERS = ("idempotency-key", "x-idempotency-key", "x-tidings-idempotency-key")


def message_id(message: Any) -> str:
    """The id the inbox records for a Record or a Delivery."""
    for name in IDEMPOTENCY_HEADERS:
        if name in message.headers:
            return str(message.headers[name])
    if isinstance(message, Record):
        return f"{message.topic}/{message.partition}/{message.offset}"
    return f"{message.queue}/{message.id}"


class Inbox:
    """``connect()`` returns a new DB-API connection to your database
    (sqlite3, psycopg, ...); one is kept per handler thread. Raises
    ConfigurationError for a bad table name or retention."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        table: str = "tidings_inbox",
        retention: float | str = "7d",
    ) -> None:
        if not callable(connect):
            raise ConfigurationError("Inbox needs a function returning a database connection")
        validate_name("inbox table", table)
        if not table.replace("_", "").isalnum():
            raise ConfigurationError(f"inbox table {table!r}: use letters, digits and _")
        self.connect, self.table = connect, table
        self.retention_s = parse_duration(retention, "retention")
        self._local = threading.local()
        self._last_purge = 0.0
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._generation = 0

    def close(self) -> None:
        """Close every connection this inbox opened (the runner does it on
        stop); a later use opens new ones."""
        with self._lock:
            conns, self._open = self._open, []
            self._generation += 1
        for conn in conns:
            try:
                conn.close()
            except Exception:  # closing from another thread: best effort
                pass

    # ---- connections ------------------------------------------------------------
    def connection(self) -> Any:
        """This thread's connection (created, and the table with it, on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.generation != self._generation:
            conn = self.connect()
            with self._lock:
                self._open.append(conn)
            self._local.conn, self._local.generation = conn, self._generation
            self._local.mark = _placeholder(conn)
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (handler TEXT NOT NULL, "
                "message_id TEXT NOT NULL, processed_at BIGINT NOT NULL, "
                "PRIMARY KEY (handler, message_id))"
            )
            conn.commit()
        return conn

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur = self._local.conn.cursor()
        cur.execute(sql.replace("?", self._local.mark), params)
        return cur

    # ---- the protocol ---------------------------------------------------------------
    def begin(self, handler: str, message: Any) -> bool:
        """Open the transaction with the inbox row; False if already processed."""
        self.connection()
        sql = (
            f"INSERT INTO {self.table} (handler, message_id, processed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (handler, message_id) DO NOTHING"
        )
        cur = self._execute(sql, (handler, message_id(message), int(time.time() * 1000)))
        if cur.rowcount == 0:
            self._local.conn.rollback()
            return False
        return True

    def commit(self) -> None:
        self._local.conn.commit()
        self._maybe_purge()

    def rollback(self) -> None:
        self._local.conn.rollback()

    def seen(self, handler: str, message: Any) -> bool:
        """Whether ``message`` was processed by ``handler`` (committed)."""
        self.connection()
        cur = self._execute(
            f"SELECT 1 FROM {self.table} WHERE handler=? AND message_id=?",
            (handler, message_id(message)),
        )
        found = cur.fetchone() is not None
        self._local.conn.rollback()
        return found

    def purge(self, older_than_s: float | None = None) -> int:
        """Delete rows older than ``older_than_s`` (default: the retention); how many."""
        self.connection()
        cutoff = int((time.time() - (older_than_s or self.retention_s)) * 1000)
        cur = self._execute(f"DELETE FROM {self.table} WHERE processed_at < ?", (cutoff,))
        self._local.conn.commit()
        return int(cur.rowcount)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_purge < 60:
                return
            self._last_purge = now
        self.purge()

    # ---- as middleware ------------------------------------------------------------
    def middleware(self, handler: str, is_async: bool) -> Callable[..., Any]:
        """The middleware the runtime adds innermost for a handler with this inbox."""
        from .lanes import _failed

        def run(ctx: HandlerContext, call_next: Callable[[HandlerContext], Any]) -> Any:
            if not self.begin(handler, ctx.message):
                return None  # processed before: skipped
            try:
                ctx.connection = self._local.conn
                out = call_next(ctx)
            except BaseException:
                self.rollback()
                raise
            self.rollback() if _failed(out) else self.commit()
            return out

        async def arun(ctx: HandlerContext, call_next: Callable[[HandlerContext], Any]) -> Any:
            if not self.begin(handler, ctx.message):
                return None
            try:
                ctx.connection = self._local.conn
                out = await call_next(ctx)
            except BaseException:
                self.rollback()
                raise
            self.rollback() if _failed(out) else self.commit()
            return out

        return arun if is_async else run


def _placeholder(conn: Any) -> str:
    module = sys.modules.get(type(conn).__module__.split(".")[0])
    style = getattr(module, "paramstyle", "qmark")
    return "?" if style == "qmark" else "%s"
