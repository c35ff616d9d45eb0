"""Wake-ups inside one process: a condition variable and change counters."""

from __future__ import annotations

import threading
from collections.abc import Collection


class MemoryWaiters:
    """Counts changes per channel; waiters sleep on one condition."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = {}
        self._epoch = 0  # bumped by notify_everyone: wakes every waiter

    def notify(self, channel: str) -> None:
        with self._cond:
            self._versions[channel] = self._versions.get(channel, 0) + 1
            self._cond.notify_all()

    def notify_everyone(self) -> None:
        """Wake every waiter whatever it watches (e.g. after lost notifications)."""
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def notify_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _version(self, channels: Collection[str]) -> int:
        return self._epoch + sum(self._versions.get(c, 0) for c in channels)

    def waiter(self, channels: Collection[str]) -> MemoryWaiters.Waiter:
        return MemoryWaiters.Waiter(self, tuple(channels))

    class Waiter:
        """See :class:`tidings.ports.Waiter`."""

        def __init__(self, owner: MemoryWaiters, channels: tuple[str, ...]) -> None:
            self._owner = owner
            self._channels = channels
            self._seen = 0

        def arm(self) -> None:
            with self._owner._cond:
                self._seen = self._owner._version(self._channels)

        def wait(self, timeout: float) -> bool:
            owner = self._owner
            with owner._cond:
                return owner._cond.wait_for(
                    lambda: owner._version(self._channels) != self._seen, timeout
                )

        def close(self) -> None:
            pass
