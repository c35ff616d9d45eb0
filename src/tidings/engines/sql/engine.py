"""``sqlite:///path/to/bus.db`` — the embedded engine."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Collection
from functools import partial
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from ...config import parse_duration
from ...errors import ConfigurationError
from ...features import Features
from ...groups.stored import StoredGroups
from ...ports.engine import MaintenanceStatus
from ..cursor import PollingCursor, log_channels
from ..maintenance import Maintainer
from .database import SECURE_DELETE_PRAGMA, SQLiteSession, Writer, connect, ensure_schema, translate
from .failed import SqlFailedStore, store_beside
from .log import SqlLog
from .maintenance import claim_maintenance
from .notify import Notifier, SocketWaiter
from .queue import SqlQueues
from .vacuum import reclaim

T = TypeVar("T")


def path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise ConfigurationError(
            f"not an SQLite URL: {url!r}; use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = parts.path[1:]
    if not path or path.endswith("/"):
        raise ConfigurationError(f"the SQLite URL {url!r} names no file")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


def _secure_delete(value: str) -> str:
    if value.lower() not in SECURE_DELETE_PRAGMA:
        raise ConfigurationError(
            f"secure_delete: {value!r} is not one of fast (default), on (overwrite "
            "deleted content everywhere) or off"
        )
    return value.lower()


class SQLiteEngine:
    """One SQLite file; safe to share between threads and processes on one host.

    URL options: ``lock_timeout`` (default ``60s``): how long a write waits
    for another process's transaction before :class:`EngineTimeout`;
    ``maintenance_interval`` (default ``60s``, ``0`` = off): how often one
    process sharing the file applies retention and compaction and gives
    free space back to the file system; ``secure_delete`` (``fast``,
    default; ``on`` to overwrite deleted content everywhere; ``off``).
    """

    features = Features()

    def __init__(self, url: str) -> None:
        self.url = url
        path, options = path_from_url(url)
        self.path = path
        lock_timeout = parse_duration(options.pop("lock_timeout", "60s"), "lock_timeout")
        interval = parse_duration(
            options.pop("maintenance_interval", "60s"), "maintenance_interval"
        )
        self._secure_delete = _secure_delete(options.pop("secure_delete", "fast"))
        if options:
            raise ConfigurationError(f"unknown SQLite URL option(s): {sorted(options)}")
        if os.path.isdir(path):
            raise ConfigurationError(f"{path} is a directory; the SQLite URL must name a file")
        self._busy = lock_timeout
        first = connect(path, lock_timeout, self._secure_delete)
        ensure_schema(first, path)
        self._notifier = Notifier(path)
        self._writer = Writer(SQLiteSession(first, lock_timeout), self._notifier.notify)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = [first]
        self._readers_lock = threading.Lock()
        self.log = SqlLog(self._writer, self._reader, path)
        self.groups = StoredGroups(self.log)
        self.queues = SqlQueues(self._writer, self._read)
        self._maintainer = Maintainer(
            self.log,
            interval,
            partial(claim_maintenance, self._writer),
            self.queues.sweep_expired,
            self.reclaim_space,
        )
        self._maintainer.start()

    def _reader(self) -> sqlite3.Connection:
        """A read connection per thread: sqlite3 connections are not for sharing."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._busy, self._secure_delete)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._reader())
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def reclaim_space(self) -> int:
        """Give free pages back to the file system (a maintenance round's
        share); returns how many pages the file shrank by."""
        conn = connect(self.path, self._busy, self._secure_delete)
        try:
            return reclaim(conn)
        except sqlite3.Error as exc:
            raise translate(exc) from exc
        finally:
            conn.close()

    def waiter(self, channels: Collection[str]) -> SocketWaiter:
        return SocketWaiter(self._notifier.directory, channels)

    def open_cursor(self, topics: Collection[str]) -> PollingCursor:
        return PollingCursor(self.log, partial(self.waiter, log_channels(topics)))

    def failed_store(self) -> SqlFailedStore:
        """The runtime's failed events, in this engine's database (R3)."""
        return store_beside(self.queues)

    def maintenance_status(self) -> MaintenanceStatus:
        return self._maintainer.status()

    def close(self) -> None:
        self._maintainer.stop()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._notifier.close()
