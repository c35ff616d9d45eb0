"""Cross-process wake-ups for the SQLite engine, without polling a core.

Each waiting consumer binds one Unix datagram socket and registers it under
every channel it waits on: ``<db>.notify/<channel hash>/<waiter>`` (the
first entry is the bound socket, the others hard links to it). After a
commit the writer lists the directory of each channel it touched and sends
one datagram to each waiter found there, so a commit costs nothing for
waiters of other channels and wakes no one else.

No wake-up is lost: a waiter is registered before it reads, and the writer
lists the directories afresh after every commit (no cache), so a commit the
waiter's read missed finds the registration. A datagram sent between
``arm()`` (drain) and ``wait()`` stays queued in the socket. Sockets of
dead processes refuse the datagram and are unlinked. A full socket buffer
already holds a wake-up, so that send is simply dropped. Channel
directories stay until an engine closes (re-creating one per wait would
cost more than the wait's socket); a waiter whose directory was removed
meanwhile creates it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
import time
from collections.abc import Callable, Collection, Iterable
from functools import partial

# A socket path holds at most 107 bytes: <directory>/<12 hex>/<name <= 22>.
_MAX_DIRECTORY = 70
_WAKE = b"\x01"


def _dir_for(db_path: str) -> str:
    """Long database paths get a short directory under the temp dir, named
    from the path's hash, so socket paths stay within the limit."""
    direct = db_path + ".notify"
    if len(direct) <= _MAX_DIRECTORY:
        return direct
    digest = hashlib.sha1(os.path.abspath(db_path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"tidings-{digest}.notify")


def channel_dir(directory: str, channel: str) -> str:
    """Where the waiters of ``channel`` register (any name, fixed length)."""
    return os.path.join(directory, hashlib.sha1(channel.encode()).hexdigest()[:12])


class Notifier:
    """Sends one wake-up to each waiter of the channels a commit touched."""

    def __init__(self, db_path: str) -> None:
        self.directory = _dir_for(db_path)
        os.makedirs(self.directory, exist_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def notify(self, channels: Iterable[str]) -> None:
        woken: set[str] = set()  # a waiter of several touched channels: once
        for channel in set(channels):
            folder = channel_dir(self.directory, channel)
            try:
                names = os.listdir(folder)
            except FileNotFoundError:  # nobody waits on it
                continue
            for name in names:
                if name not in woken:
                    woken.add(name)
                    self._send(os.path.join(folder, name))

    def _send(self, path: str) -> None:
        try:
            self._sock.sendto(_WAKE, path)
        except BlockingIOError:
            pass  # buffer full: a wake-up is already pending there
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(OSError):
                os.unlink(path)  # its process is gone

    def close(self) -> None:
        """Remove the channel directories no waiter uses any more (they are
        kept while the engine is open: re-creating one per wait costs more
        than the wait's own socket), then the directory if it is empty."""
        self._sock.close()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)  # only succeeds when empty
            os.rmdir(self.directory)


class SocketWaiter:
    """A consumer's end: see :class:`tidings.ports.Waiter`."""

    _counter = 0

    def __init__(self, directory: str, channels: Collection[str]) -> None:
        SocketWaiter._counter += 1
        self._name = f"{os.getpid():x}-{SocketWaiter._counter:x}-{os.urandom(3).hex()}"
        self._folders = sorted({channel_dir(directory, c) for c in channels})
        self._paths: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._register()
        except BaseException:
            self.close()
            raise
        self._sock.setblocking(False)
        self._pending = False

    def _register(self) -> None:
        for folder in self._folders:
            path = os.path.join(folder, self._name)
            if self._paths:
                _retry_in(folder, partial(os.link, self._paths[0], path))
            else:
                _retry_in(folder, partial(self._sock.bind, path))
            self._paths.append(path)

    def fileno(self) -> int:
        """The socket: readable when a wake-up is pending (for event loops)."""
        return self._sock.fileno()

    def arm(self) -> None:
        self._pending = self._drain()

    def _drain(self) -> bool:
        hit = False
        while True:
            try:
                self._sock.recv(64)
            except (BlockingIOError, OSError):
                return hit
            hit = True

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
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._paths = []


def _retry_in(folder: str, make: Callable[[], object]) -> None:
    """Create an entry in ``folder``, creating the folder when missing (or
    removed meanwhile by a closing engine) and trying again."""
    for _ in range(100):
        try:
            make()
            return
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.makedirs(folder, exist_ok=True)
    raise FileNotFoundError(f"cannot register a waiter in {folder}")


_now = time.monotonic
