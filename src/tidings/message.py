"""Records (the log side) and the small value types around them.

A :class:`Record` is immutable once read: ``key`` and ``value`` are bytes
(``value is None`` is a tombstone), ``timestamp`` is milliseconds since the
epoch (log append time), ``headers`` a ``str -> str`` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

Headers = Mapping[str, str]
EMPTY_HEADERS: Mapping[str, str] = {}


class TopicPartition(NamedTuple):
    """One partition of one topic."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where an acknowledged (durable) record was stored."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class Record:
    """A record read from a topic partition."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "timestamp", "headers")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers

    @property
    def is_tombstone(self) -> bool:
        """True when the record deletes its key (compaction drops it later)."""
        return self.value is None

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, value={self.value!r:.40}, timestamp={self.timestamp})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value type


class ProducerRecord(NamedTuple):
    """A record on its way in: key, value and headers, already encoded."""

    key: bytes | None
    value: bytes | None
    headers: Headers = EMPTY_HEADERS
