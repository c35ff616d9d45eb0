"""Typed settings, validated at construction; the only place env vars are read.

Durations accept seconds as numbers or strings like ``"500ms"``, ``"30s"``,
``"5m"``, ``"2h"``, ``"7d"``; sizes accept ``"512"``, ``"64KB"``, ``"1GB"``
(powers of 1024).
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigurationError

DEFAULT_URL = "sqlite:///./tidings.db"
Durability = Literal["fsync", "os"]

_MAX_NAME = 249
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,248}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS_B = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default_url() -> str:
    """The engine URL: ``TIDINGS_URL``, else ``sqlite:///./tidings.db``."""
    return os.environ.get("TIDINGS_URL") or DEFAULT_URL


def validate_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid topic/queue/group name, else raise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"invalid {kind} name {name!r}: use 1-249 characters from "
            "A-Z a-z 0-9 . _ - , starting with a letter or digit"
        )
    return name


def parse_duration(value: float | str, option: str) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"7d"``; raises ConfigurationError."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{option}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigurationError(
                f"{option}: {value!r} is not a duration; use e.g. 500ms, 30s, 5m, 2h, 7d"
            )
        seconds = float(m.group(1)) * _UNITS_S[m.group(2)]
    if seconds < 0:
        raise ConfigurationError(f"{option}: duration must not be negative, got {value!r}")
    return seconds


def parse_size(value: int | str, option: str) -> int:
    """Bytes from ``1024``, ``"64KB"``, ``"1GB"``; raises ConfigurationError."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{option}: expected a size, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ConfigurationError(f"{option}: {value!r} is not a size; use e.g. 512, 64KB, 1GB")
        unit = (m.group(2) or "").upper()[:1]
        size = int(float(m.group(1)) * _UNITS_B[unit])
    if size < 0:
        raise ConfigurationError(f"{option}: size must not be negative, got {value!r}")
    return size


def _positive(option: str, value: float) -> None:
    if value <= 0:
        raise ConfigurationError(f"{option} must be > 0, got {value!r}")


@dataclass(frozen=True)
class TopicConfig:
    """How a topic is stored. ``None`` retention means keep forever."""

    name: str
    partitions: int = 1
    retention_s: float | None = None
    retention_bytes: int | None = None
    compact: bool = False
    tombstone_retention_s: float = 86400.0
    durability: Durability = "fsync"
    max_record_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        validate_name("topic", self.name)
        if not isinstance(self.partitions, int) or not 1 <= self.partitions <= 10_000:
            raise ConfigurationError(f"partitions must be 1..10000, got {self.partitions!r}")
        if self.retention_s is not None:
            _positive("retention", self.retention_s)
        if self.retention_bytes is not None:
            _positive("retention_bytes", self.retention_bytes)
        if self.durability not in ("fsync", "os"):
            raise ConfigurationError(f"durability must be 'fsync' or 'os', got {self.durability!r}")
        _positive("max_record_bytes", self.max_record_bytes)
        if self.tombstone_retention_s < 0:
            raise ConfigurationError("tombstone_retention must not be negative")


@dataclass(frozen=True)
class GroupConfig:
    """Consumer-group membership timing and strategy."""

    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    strategy: Literal["sticky", "range", "roundrobin"] = "sticky"

    def __post_init__(self) -> None:
        _positive("session_timeout", self.session_timeout_s)
        _positive("heartbeat_interval", self.heartbeat_interval_s)
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ConfigurationError("heartbeat_interval must be shorter than session_timeout")
        if self.strategy not in ("sticky", "range", "roundrobin"):
            raise ConfigurationError(
                f"strategy must be sticky, range or roundrobin, got {self.strategy!r}"
            )


@dataclass(frozen=True)
class ProducerConfig:
    """Batching: a batch is sent when it holds ``max_batch_records`` or
    ``max_batch_bytes``, or ``linger_s`` after its first record. Appends that
    fail with a retriable engine error (database restarting, file locked)
    are retried with backoff for up to ``retry_timeout_s``; a retry after a
    commit whose outcome was lost can store a record twice (at-least-once).

    Backpressure: records sent and not yet durable hold at most
    ``buffer_bytes`` (values, keys and headers); a ``send`` that would pass
    it waits up to ``max_block_s`` for room, then raises ``BufferFull``
    (``AsyncProducer.send`` never waits: it raises at once)."""

    linger_s: float = 0.0
    max_batch_records: int = 10_000
    max_batch_bytes: int = 4 << 20
    partitioner: Literal["crc32", "murmur2"] = "crc32"
    retry_timeout_s: float = 30.0
    buffer_bytes: int = 32 << 20
    max_block_s: float = 60.0

    def __post_init__(self) -> None:
        if self.linger_s < 0:
            raise ConfigurationError("linger must not be negative")
        _positive("max_batch_records", self.max_batch_records)
        _positive("max_batch_bytes", self.max_batch_bytes)
        if self.retry_timeout_s < 0:
            raise ConfigurationError("retry_timeout must not be negative")
        _positive("buffer_bytes", self.buffer_bytes)
        if self.max_block_s < 0:
            raise ConfigurationError("max_block must not be negative")
        if self.partitioner not in ("crc32", "murmur2"):
            raise ConfigurationError(
                f"partitioner must be crc32 or murmur2, got {self.partitioner!r}"
            )


@dataclass(frozen=True)
class AsyncConfig:
    """The threads ``AsyncClient`` runs blocking calls on (never the event
    loop's default executor, which DNS resolution needs).

    ``threads`` run short calls (publish, ack, admin, send_batch);
    ``waiting_threads`` run calls that wait for something to arrive
    (``get(wait=...)``, ``flush``), so idle waits never hold up a short call.
    More waits than ``waiting_threads`` queue for a waiting thread."""

    threads: int = 4
    waiting_threads: int = 32

    def __post_init__(self) -> None:
        for option in ("threads", "waiting_threads"):
            value = getattr(self, option)
            if type(value) is not int or value < 1:
                raise ConfigurationError(f"{option} must be an int >= 1, got {value!r}")


Overflow = Literal["reject", "dead-letter"]


@dataclass(frozen=True)
class QueueConfig:
    """How a queue behaves. Durations in seconds; ``None`` = no limit.

    ``lease_s``: how long a delivery stays invisible to others (visibility
    timeout). ``max_deliveries``: after that many deliveries the message goes
    to the dead-letter queue: ``dead_letter``, or without one the queue's
    own ``<name>.dlq`` (see :attr:`dead_letter_queue`); a dead letter is
    never dropped. ``dedup_window_s``: how
    long an idempotency key is remembered. ``ttl_s``: a message not
    delivered within it expires (dead-lettered with reason ``expired``).
    ``max_length`` with ``overflow``: refuse new messages, or dead-letter
    the oldest. ``fifo``: per group key, one message in flight at a time.
    """

    name: str
    lease_s: float = 30.0
    max_deliveries: int | None = None
    dead_letter: str | None = None
    dedup_window_s: float = 300.0
    ttl_s: float | None = None
    max_length: int | None = None
    overflow: Overflow = "reject"
    fifo: bool = False
    max_body_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        validate_name("queue", self.name)
        _positive("lease", self.lease_s)
        if self.max_deliveries is not None and self.max_deliveries < 1:
            raise ConfigurationError(f"max_deliveries must be >= 1, got {self.max_deliveries!r}")
        if self.dead_letter is not None:
            validate_name("dead-letter queue", self.dead_letter)
            if self.dead_letter == self.name:
                raise ConfigurationError(
                    f"queue {self.name!r} cannot be its own dead-letter queue (it would loop)"
                )
        if self.dedup_window_s < 0:
            raise ConfigurationError("dedup_window must not be negative")
        if self.ttl_s is not None:
            _positive("ttl", self.ttl_s)
        if self.max_length is not None:
            _positive("max_length", self.max_length)
        if self.overflow not in ("reject", "dead-letter"):
            raise ConfigurationError(
                f"overflow must be reject or dead-letter, not {self.overflow!r}"
            )
        _positive("max_body_bytes", self.max_body_bytes)

    @property
    def dead_letter_queue(self) -> str:
        """Where this queue's dead letters go: ``dead_letter`` if set, else
        ``<name>.dlq`` (created, plain, with the first dead letter; a name
        too long for the suffix is shortened with a hash of it)."""
        return self.dead_letter or implicit_dead_letter(self.name)


_SUFFIX = ".dlq"


def implicit_dead_letter(queue: str) -> str:
    """``<queue>.dlq``, kept within the 249-character name limit."""
    if len(queue) + len(_SUFFIX) <= _MAX_NAME:
        return queue + _SUFFIX
    digest = f"{zlib.crc32(queue.encode()):08x}"
    return f"{queue[: _MAX_NAME - len(_SUFFIX) - len(digest) - 1]}.{digest}{_SUFFIX}"
