"""The memory engine's queues: the SQL queue store on a private in-memory
SQLite database.

One implementation of the queue semantics instead of two: the reference
behaviour for queues *is* the SQL store, and the memory engine gets it
without files or a server. Nothing survives the process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from ..sql.database import SQLiteSession, Writer, connect, ensure_schema
from ..sql.queue import SqlQueues

T = TypeVar("T")


def memory_queues(notify: Callable[[str], None]) -> SqlQueues:
    conn = connect(":memory:", busy_timeout_s=1.0)
    ensure_schema(conn, ":memory:")

    def wake(channels: set[str]) -> None:
        for channel in channels:
            notify(channel)

    writer = Writer(SQLiteSession(conn, 1.0), wake)

    def read(fn: Callable[[sqlite3.Connection], T]) -> T:
        # One connection: reads go through the writer so they never interleave
        # with another thread's transaction.
        return writer.run(fn, fsync=False)

    return SqlQueues(writer, read)
