"""The in-memory engine: the executable reference of the semantics.

Nothing survives the process; everything else behaves as on the durable
engines (same validation, same group coordination, same errors).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from urllib.parse import parse_qs, urlsplit

from ...config import parse_duration
from ...errors import ConfigurationError
from ...features import Features
from ...groups.stored import StoredGroups
from ...ports.engine import MaintenanceStatus
from ..cursor import PollingCursor, log_channels
from ..maintenance import Maintainer
from ..sql.failed import SqlFailedStore, store_beside
from .log import MemoryLog
from .queue import memory_queues
from .waiter import MemoryWaiters


class MemoryEngine:
    """``memory://`` — one process, no persistence."""

    features = Features(
        durable_append="unsupported",
        multi_process="unsupported",
        transactional_publish="unsupported",
        transactional_consume="unsupported",
        topic_bindings="unsupported",  # its log and queues are separate stores
        durability="none",
    )

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._waiters = MemoryWaiters()
        self.log = MemoryLog(self._waiters.notify)
        self.groups = StoredGroups(self.log)
        self.queues = memory_queues(self._waiters.notify)
        interval = _option(url, "maintenance_interval", "60s")
        self._maintainer = Maintainer(
            self.log, interval, lambda _interval: True, self.queues.sweep_expired
        )
        self._maintainer.start()

    def waiter(self, channels: Collection[str]) -> MemoryWaiters.Waiter:
        return self._waiters.waiter(channels)

    def open_cursor(self, topics: Collection[str]) -> PollingCursor:
        return PollingCursor(self.log, partial(self.waiter, log_channels(topics)))

    def failed_store(self) -> SqlFailedStore:
        """The runtime's failed events, in this engine's database (R3)."""
        return store_beside(self.queues)

    def maintenance_status(self) -> MaintenanceStatus:
        return self._maintainer.status()

    def close(self) -> None:
        self._maintainer.stop()
        self._waiters.notify_all()


def _option(url: str, name: str, default: str) -> float:
    """``memory://?maintenance_interval=1s`` → 1.0; unknown options are refused."""
    options = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    value = parse_duration(options.pop(name, default), name)
    if options:
        raise ConfigurationError(f"unknown memory URL option(s): {sorted(options)}")
    return value
