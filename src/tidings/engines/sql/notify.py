"""Cross-process wake-ups for the SQLite engine, without polling a core.

Each waiting consumer binds a Unix datagram socket in ``<db>.notify/``;
after a commit the writer sends the changed channel's name to every socket
there. A datagram sent between ``arm()`` (drain) and ``wait()`` stays queued
in the socket, so no wake-up is lost. Sockets of dead processes refuse the
datagram and are removed. A full socket buffer already holds a wake-up, so
that send is simply dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
import threading
import time
from collections.abc import Collection, Iterable


def _dir_for(db_path: str) -> str:
    """Socket paths are limited to ~107 bytes, so long database paths get a
    short directory under the temp dir, named from the path's hash."""
    direct = db_path + ".notify"
    if len(direct) < 80:
        return direct
    digest = hashlib.sha1(os.path.abspath(db_path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"tidings-{digest}.notify")


class Notifier:
    """Sends wake-ups to every socket in the directory."""

    def __init__(self, db_path: str) -> None:
        self.directory = _dir_for(db_path)
        os.makedirs(self.directory, exist_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._mtime = -1
        self._targets: list[str] = []

    def _refresh(self) -> list[str]:
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:  # nobody is waiting (the last one removed it)
            return []
        if mtime != self._mtime:
            self._mtime = mtime
            self._targets = [e.path for e in os.scandir(self.directory)]
        return self._targets

    def notify(self, channels: Iterable[str]) -> None:
        message = "\n".join(sorted(set(channels))).encode()[:4096]
        if not message:
            return
        with self._lock:
            for path in self._refresh():
                self._send(path, message)

    def _send(self, path: str, message: bytes) -> None:
        try:
            self._sock.sendto(message, path)
        except BlockingIOError:
            pass  # buffer full: a wake-up is already pending there
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(OSError):
                os.unlink(path)  # its process is gone

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)  # only succeeds when no waiter is left


class SocketWaiter:
    """A consumer's end: see :class:`tidings.ports.Waiter`."""

    _counter = 0

    def __init__(self, directory: str, channels: Collection[str]) -> None:
        SocketWaiter._counter += 1
        self.path = os.path.join(directory, f"{os.getpid()}-{SocketWaiter._counter}-{id(self):x}")
        self._channels = frozenset(channels)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        os.makedirs(directory, exist_ok=True)  # another process may have removed it
        self._sock.bind(self.path)
        self._sock.setblocking(False)
        self._pending = False

    def arm(self) -> None:
        self._pending = self._drain()

    def _drain(self) -> bool:
        hit = False
        while True:
            try:
                data = self._sock.recv(8192)
            except (BlockingIOError, OSError):
                return hit
            hit = hit or self._matches(data)

    def _matches(self, data: bytes) -> bool:
        return bool(self._channels.intersection(data.decode(errors="replace").split("\n")))

    def wait(self, timeout: float) -> bool:
        if self._pending:
            self._pending = False
            return True
        deadline = _now() + timeout
        while True:
            left = deadline - _now()
            if left <= 0:
                return False
            ready, _, _ = select.select([self._sock], [], [], left)
            if ready and self._drain():
                return True

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


_now = time.monotonic
