"""Reading a log as a stream: open at positions, fetch with a timeout, close.

SQL and memory engines poll (``LogEngine.read`` plus a ``Waiter``: the
default :class:`tidings.engines.cursor.PollingCursor`); a broker pushes
records under credit (RabbitMQ streams) and buffers them in its cursor. The
consumer sees one shape either way.

A cursor is used by one thread at a time (its consumer's), but ``close``
may come from another thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..message import Record, TopicPartition


class Cursor(Protocol):
    """Reads some partitions of some topics from positions the consumer sets."""

    def assign(self, positions: Mapping[TopicPartition, int]) -> None:
        """Read exactly these partitions, each from its offset (replaces
        the previous assignment; a partition kept at the same offset keeps
        what was already fetched for it)."""
        ...

    def positions(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the offset the next record ``fetch``
        returns for it starts from: just past what was returned (records a
        cursor buffered but did not return yet do not count). The consumer
        derives what it handed out and may commit from these, so it does
        not have to look at every record."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Go on reading ``tp`` from ``offset`` (drops what was fetched ahead)."""
        ...

    def pause(self, tps: frozenset[TopicPartition]) -> None:
        """Fetch nothing from ``tps`` until resumed (the positions stay).
        Pausing is kept apart from the assignment: a partition paused, then
        dropped and assigned again by :meth:`assign`, is still paused."""
        ...

    def resume(self, tps: frozenset[TopicPartition]) -> None: ...

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        """Records of the assigned, unpaused partitions from their
        positions on, in offset order within each partition, at most
        ``max_records`` (may be a little more, to finish a stored batch).
        Waits up to ``timeout`` seconds when none is there; ``[]`` then.
        The positions move past what is returned."""
        ...

    def close(self) -> None: ...
