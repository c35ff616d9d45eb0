"""The default :class:`~tidings.ports.cursor.Cursor` of engines that poll.

Memory and SQL engines serve reads with ``LogEngine.read`` and learn of new
records through a :class:`~tidings.ports.engine.Waiter`. A
:class:`PollingCursor` reads its partitions round-robin (so one busy
partition cannot starve the others) and, when none has anything, sleeps
on the waiter armed *before* the read: an append between the read and the
sleep ends the sleep at once (no lost wake-up).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping

from ..errors import ConfigurationError, EngineError
from ..message import Record, TopicPartition
from ..ports.engine import Waiter
from ..ports.log import LogEngine


def log_channels(topics: Collection[str]) -> list[str]:
    """The waiter channels that announce appends to ``topics``."""
    return [f"log:{t}" for t in topics]


class PollingCursor:
    """Reads assigned partitions with ``log.read``; waits on a waiter from
    ``waiter_factory()`` (made once, closed with the cursor).

    Pausing is kept apart from the assignment: a paused partition stays
    paused across :meth:`assign` until :meth:`resume`."""

    def __init__(self, log: LogEngine, waiter_factory: Callable[[], Waiter]) -> None:
        self._log = log
        self._waiter = waiter_factory()
        self._positions: dict[TopicPartition, int] = {}  # the next offset to read
        self._paused: set[TopicPartition] = set()
        self._rotate = 0
        self._lock = threading.Lock()  # guards _busy/_closed against a close from elsewhere
        self._busy = False
        self._closed = False

    def assign(self, positions: Mapping[TopicPartition, int]) -> None:
        self._positions = dict(positions)

    def positions(self) -> dict[TopicPartition, int]:
        return dict(self._positions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._positions:
            raise ConfigurationError(f"{tp} is not assigned to this cursor")
        self._positions[tp] = offset

    def pause(self, tps: frozenset[TopicPartition]) -> None:
        self._paused |= tps

    def resume(self, tps: frozenset[TopicPartition]) -> None:
        self._paused -= tps

    def fetch(self, max_records: int, timeout: float) -> list[Record]:
        with self._lock:
            if self._closed:
                return []
            self._busy = True
        try:
            return self._fetch(max_records, time.monotonic() + timeout)
        finally:
            with self._lock:
                self._busy = False
                closing = self._closed
            if closing:  # closed from another thread while we read or slept
                self._waiter.close()

    def _fetch(self, max_records: int, deadline: float) -> list[Record]:
        while True:
            self._waiter.arm()  # before the read: an append after it wakes the wait
            records = self._read(max_records)
            left = deadline - time.monotonic()
            if records or left <= 0 or self._closed:
                return records
            if not self._waiter.wait(left):
                return []  # timed out; the next fetch reads again first

    def _read(self, max_records: int) -> list[Record]:
        tps = [tp for tp in self._positions if tp not in self._paused]
        if not tps:
            return []
        self._rotate = (self._rotate + 1) % len(tps)
        out: list[Record] = []
        for tp in tps[self._rotate :] + tps[: self._rotate]:
            try:
                got = self._log.read(
                    tp.topic, tp.partition, self._positions[tp], max_records - len(out)
                )
            except EngineError:
                if out:
                    return out  # positions already match what we return
                raise
            if got:
                got = got[: max_records - len(out)]  # reads may finish a stored batch
                self._positions[tp] = got[-1].offset + 1
                out.extend(got)
                if len(out) >= max_records:
                    break
        return out

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._busy:
                return  # the fetching thread closes the waiter on its way out
        self._waiter.close()
