"""What a consumer read but has not handed out, and what it handed out last.

A consumer must never commit a record its caller has not had, nor one the
caller may still be processing. Three positions per partition follow from
that: *fetched* (kept by the consumer), *handed out* (just past the last
record ``poll`` returned or iteration yielded) and *processed* (the caller
came back for more since). Only the last read is kept here, with two
indexes, so handing out a record costs an index step and nothing per
partition; the other two positions are derived when a commit needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from ..message import Record, TopicPartition


class ReadAhead:
    """``chunk[:next]`` handed out, ``chunk[next:]`` read ahead;
    ``chunk[first:next]`` handed out last and not processed yet (when
    handing out singly, only ``chunk[next - 1]``)."""

    __slots__ = ("chunk", "first", "next", "singly")

    def __init__(self) -> None:
        self.chunk: list[Record] = []
        self.next = 0
        self.first = 0
        self.singly = False

    def use(self, chunk: list[Record], handed: int) -> None:
        """A new read, of which the first ``handed`` records are handed out."""
        self.chunk, self.next, self.first, self.singly = chunk, handed, 0, False

    def asked_again(self) -> None:
        """The caller came back for more: all handed out is processed."""
        self.first, self.singly = self.next, False

    def buffered(self) -> bool:
        return self.next < len(self.chunk)

    def take_one(self) -> Record | None:
        """The next record read ahead, handed out singly; None if none."""
        i = self.next
        if i >= len(self.chunk):
            return None
        self.next, self.singly = i + 1, True
        return self.chunk[i]

    def hand_out(self, max_records: int) -> list[Record]:
        """Up to ``max_records`` records read ahead, handed out together."""
        start = self.next
        out = self.chunk[start : start + max_records]
        self.first, self.next, self.singly = start, start + len(out), False
        return out

    def drop(self, tps: set[TopicPartition]) -> None:
        """Forget the read-ahead and unprocessed records of ``tps``."""
        keys = {(tp.topic, tp.partition) for tp in tps}
        start = self._first_unprocessed()
        if not any(r[:2] in keys for r in islice(self.chunk, start, None)):
            return
        unprocessed = [r for r in self.chunk[start : self.next] if r[:2] not in keys]
        ahead = [r for r in self.chunk[self.next :] if r[:2] not in keys]
        self.use(unprocessed + ahead, len(unprocessed))

    def handed(self, fetched: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Per partition, just past the last record handed out: the fetch
        position, or the first record still read ahead."""
        return _rewind_to_first(dict(fetched), islice(self.chunk, self.next, None))

    def processed(self, fetched: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Per partition, just past the last processed record: as
        :meth:`handed`, but not past the records handed out last."""
        unprocessed = islice(self.chunk, self._first_unprocessed(), self.next)
        return _rewind_to_first(self.handed(fetched), unprocessed)

    def _first_unprocessed(self) -> int:
        return max(self.first, self.next - 1) if self.singly else self.first


def _rewind_to_first(
    positions: dict[TopicPartition, int], records: Iterable[Record]
) -> dict[TopicPartition, int]:
    """Set each partition's position back to its first record in
    ``records`` (in offset order per partition); partitions not in
    ``positions`` (not assigned any more) stay out."""
    seen: set[tuple[str, int]] = set()
    for r in records:
        key = (r.topic, r.partition)
        if key not in seen:
            seen.add(key)
            tp = TopicPartition(r.topic, r.partition)
            if tp in positions:
                positions[tp] = r.offset
    return positions
