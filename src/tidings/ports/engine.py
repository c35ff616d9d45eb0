"""The engine as a whole: a log side, group coordination, cursors, a queue
side, wake-ups, features."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple, Protocol

from ..features import Features
from .cursor import Cursor
from .groups import GroupCoordinator
from .log import LogEngine
from .queue import QueueEngine


class Waiter(Protocol):
    """Blocks a consumer until something it watches may have changed.

    Use: ``arm()``, then read, and only if the read found nothing,
    ``wait(timeout)``. A change between ``arm`` and ``wait`` makes ``wait``
    return at once (no lost wake-up). Wake-ups may be spurious.
    """

    def arm(self) -> None: ...

    def wait(self, timeout: float) -> bool:
        """True if woken by a change, False on timeout."""
        ...

    def close(self) -> None: ...


class MaintenanceStatus(NamedTuple):
    """What the background maintenance of one engine has done.

    ``last_success``: wall-clock time (seconds) of the last round in which
    every step succeeded (``None``: none yet). ``last_error`` /
    ``last_error_at``: the last step that failed (``"TypeName: message"``).
    ``failures``: failed rounds since the last success. ``rounds``: rounds
    this process ran (a round another process was due to run is not
    counted). ``running``: the background thread is alive (``False`` when
    ``maintenance_interval=0``, or after close)."""

    running: bool
    interval_s: float
    rounds: int
    last_success: float | None
    last_error: str | None
    last_error_at: float | None
    failures: int


class Engine(Protocol):
    """One opened engine (``open_engine(url)``); thread-safe."""

    @property
    def url(self) -> str: ...

    @property
    def features(self) -> Features: ...

    @property
    def log(self) -> LogEngine: ...

    @property
    def groups(self) -> GroupCoordinator:
        """Consumer groups: membership, assignment, fenced commits (L4, L5).
        Stored engines use :class:`tidings.groups.stored.StoredGroups`."""
        ...

    @property
    def queues(self) -> QueueEngine: ...

    def open_cursor(self, topics: Collection[str]) -> Cursor:
        """A cursor that can read partitions of ``topics`` (assigned later,
        see :class:`~tidings.ports.cursor.Cursor`); the caller closes it.
        Polling engines return :class:`tidings.engines.cursor.PollingCursor`."""
        ...

    def waiter(self, channels: Collection[str]) -> Waiter:
        """A waiter woken by appends/publishes on these channels
        (``"log:<topic>"`` or ``"queue:<name>"``)."""
        ...

    def maintenance_status(self) -> MaintenanceStatus:
        """What background maintenance (retention, compaction, TTL sweep)
        has done: when it last succeeded, its last error."""
        ...

    def close(self) -> None: ...
