"""SIGINT and SIGTERM end a command by unwinding it (``KeyboardInterrupt``,
:class:`Terminated`), so its clean-up runs: commit what was printed, leave
the group, settle what was written.

Inside :func:`shielded` a signal waits until the block ends: writing a
line and recording it as written happen together, so a signal never falls
between them (printed but not committed means a duplicate next run).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class _Held:
    depth = 0  # nesting of shielded() blocks
    pending: type[BaseException] | None = None  # the signal that arrived within


class Terminated(BaseException):
    """SIGTERM arrived (like KeyboardInterrupt, not an error): exit 143."""


@contextmanager
def shielded() -> Iterator[None]:
    """Within: SIGINT/SIGTERM are held, and raised when the block ends."""
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1
        pending = _Held.pending
        if _Held.depth == 0 and pending is not None:
            _Held.pending = None
            raise pending


def _handler(signum: int, frame: object) -> None:
    exc: type[BaseException] = KeyboardInterrupt
    if signum == signal.SIGTERM:
        exc = Terminated
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up is not cut short
    if _Held.depth:
        _Held.pending = exc
        return
    raise exc


@contextmanager
def unwinding() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise KeyboardInterrupt / Terminated,
    held inside :func:`shielded` blocks. Outside the main thread, signals
    are left alone."""
    try:
        previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        _Held.pending = None
