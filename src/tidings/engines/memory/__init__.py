"""The in-memory engine: the executable reference of the semantics.

Nothing survives the process; everything else behaves as on the durable
engines (same validation, same group coordination, same errors).
"""

from __future__ import annotations

from collections.abc import Collection

from ...features import Features
from .log import MemoryLog
from .waiter import MemoryWaiters


class MemoryEngine:
    """``memory://`` — one process, no persistence."""

    features = Features(durable_append="unsupported", multi_process="unsupported")

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._waiters = MemoryWaiters()
        self.log = MemoryLog(self._waiters.notify)

    def waiter(self, channels: Collection[str]) -> MemoryWaiters.Waiter:
        return self._waiters.waiter(channels)

    def close(self) -> None:
        self._waiters.notify_all()
