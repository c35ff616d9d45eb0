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
    """Where an acknowledged (durable) record was stored.

    ``offset`` is ``None`` on an engine that learns offsets only when
    reading (``Features.append_offsets`` unsupported, e.g. RabbitMQ
    streams): the record is stored, in order, and a consumer sees its
    offset. On every other engine it is the record's offset (L2)."""

    topic: str
    partition: int
    offset: int | None
    timestamp: int


class Record(NamedTuple):
    """A record read from a topic partition.

    A tuple (immutable, compared by value) because consumers build millions
    of them a second: ``tuple.__new__`` is the cheapest object Python makes.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Headers

    @property
    def is_tombstone(self) -> bool:
        """True when the record deletes its key (compaction drops it later)."""
        return self.value is None

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, value={self.value!r:.40}, timestamp={self.timestamp})"
        )


class ProducerRecord(NamedTuple):
    """A record on its way in: key, value and headers, already encoded."""

    key: bytes | None
    value: bytes | None
    headers: Headers = EMPTY_HEADERS


class Delivery(NamedTuple):
    """A message leased to one consumer until ``lease_until`` (epoch ms).

    Settle it with ``ack``, ``nack`` or ``reject``; ``receipt`` proves the
    lease, so a consumer whose lease expired cannot settle the redelivery
    another consumer holds now."""

    queue: str
    id: int
    body: bytes
    headers: Headers
    delivery_count: int
    redelivered: bool
    receipt: str
    lease_until: int
    group: str | None = None


class QueueStats(NamedTuple):
    """Counts for ``queues describe``: ``ready`` (claimable now, including
    expired leases), ``leased``, ``delayed`` (not yet due), and
    ``dead_lettered`` (moved to the dead-letter queue and not redriven)."""

    name: str
    ready: int
    leased: int
    delayed: int
    dead_lettered: int
