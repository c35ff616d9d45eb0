"""The engine as a whole: a log side, a queue side, wake-ups, features."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ..features import Features
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


class Engine(Protocol):
    """One opened engine (``open_engine(url)``); thread-safe."""

    @property
    def url(self) -> str: ...

    @property
    def features(self) -> Features: ...

    @property
    def log(self) -> LogEngine: ...

    @property
    def queues(self) -> QueueEngine: ...

    def waiter(self, channels: Collection[str]) -> Waiter:
        """A waiter woken by appends/publishes on these channels
        (``"log:<topic>"`` or ``"queue:<name>"``)."""
        ...

    def close(self) -> None: ...
