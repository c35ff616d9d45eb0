"""``Client``: the synchronous entry point (``AsyncClient`` wraps it)."""

from __future__ import annotations

import time
from typing import Any

from ..codecs import BYTES, Codec
from ..config import (
    ProducerConfig,
    TopicConfig,
    default_url,
    parse_duration,
    parse_size,
)
from ..engines import open_engine
from ..features import Features
from ..message import RecordMetadata, TopicPartition
from ..ports.engine import Engine, MaintenanceStatus
from ..ports.log import PartitionInfo
from .admin import GroupInfo, describe_group, reset_offsets
from .consumer import Consumer
from .producer import Producer
from .queues import QueueMethods
from .starts import Start


class Client(QueueMethods):
    """A connection to one engine, chosen by URL::

        with Client("sqlite:///bus.db") as client:
            client.create_topic("bookings", partitions=3, compact=True)
            client.produce("bookings", b'{"id": 1}', key="b-1")

    ``url`` defaults to ``TIDINGS_URL``, else ``sqlite:///./tidings.db``.
    Raises ConfigurationError for a bad URL and EngineUnavailable when the
    engine cannot be opened.
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self.engine: Engine = engine or open_engine(url or default_url())
        self._producer: Producer | None = None

    @property
    def url(self) -> str:
        return self.engine.url

    @property
    def features(self) -> Features:
        return self.engine.features

    # ---- topics -------------------------------------------------------------
    def create_topic(  # noqa: PLR0913
        self,
        name: str,
        partitions: int = 1,
        *,
        retention: float | str | None = None,
        retention_bytes: int | str | None = None,
        compact: bool = False,
        tombstone_retention: float | str = "1d",
        durability: str = "fsync",
        max_record_bytes: int | str = 1 << 20,
    ) -> TopicConfig:
        """Create a topic; raises AlreadyExists or ConfigurationError."""
        config = TopicConfig(
            name=name,
            partitions=partitions,
            retention_s=None if retention is None else parse_duration(retention, "retention"),
            retention_bytes=None
            if retention_bytes is None
            else parse_size(retention_bytes, "retention_bytes"),
            compact=compact,
            tombstone_retention_s=parse_duration(tombstone_retention, "tombstone_retention"),
            durability=durability,  # type: ignore[arg-type]  # validated by TopicConfig
            max_record_bytes=parse_size(max_record_bytes, "max_record_bytes"),
        )
        self.engine.log.create_topic(config)
        return config

    def topics(self) -> list[TopicConfig]:
        return self.engine.log.list_topics()

    def topic(self, name: str) -> TopicConfig:
        """A topic's settings; raises TopicNotFound."""
        return self.engine.log.get_topic(name)

    def partitions(self, name: str) -> list[PartitionInfo]:
        """Per partition: first/next offset and stored bytes."""
        return self.engine.log.describe_partitions(name)

    def add_partitions(self, name: str, total: int) -> None:
        self.engine.log.add_partitions(name, total)

    def delete_topic(self, name: str) -> None:
        self.engine.log.delete_topic(name)

    def enforce_retention(self, name: str) -> int:
        """Apply the topic's retention now; returns records removed."""
        return self.engine.log.enforce_retention(name, int(time.time() * 1000))

    def compact(self, name: str) -> int:
        """Compact the topic now; returns records removed."""
        return self.engine.log.compact(name, int(time.time() * 1000))

    def maintenance_status(self) -> MaintenanceStatus:
        """When background maintenance (retention, compaction, the TTL
        sweep) last succeeded in this process, and its last error. Raises
        nothing."""
        return self.engine.maintenance_status()

    # ---- producing / consuming --------------------------------------------------
    def producer(self, codec: Codec[Any] = BYTES, **options: Any) -> Producer:
        """A batching producer; ``options`` are :class:`ProducerConfig` fields
        (``linger_s``, ``max_batch_records``, ``partitioner`` …)."""
        return Producer(self.engine, ProducerConfig(**options), codec)

    def produce(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        """Append one record and wait until it is durable."""
        if self._producer is None:
            self._producer = self.producer()
        return self._producer.send(topic, value, key, headers, partition).result()

    def consumer(
        self, topics: list[str] | str, group: str | None = None, **options: Any
    ) -> Consumer:
        """A consumer; see :class:`Consumer` for ``start``, ``assign``,
        ``auto_commit`` and ``group_config``."""
        names = [topics] if isinstance(topics, str) else list(topics)
        return Consumer(self.engine, names, group, **options)

    # ---- groups -----------------------------------------------------------------
    def groups(self) -> list[str]:
        return self.engine.groups.list_groups()

    def describe_group(self, group: str) -> GroupInfo:
        """Members, assignment and lag per partition; raises GroupNotFound."""
        return describe_group(self.engine, group)

    def reset_offsets(self, group: str, topic: str, to: Start) -> dict[TopicPartition, int]:
        """Set a group's committed offsets for one topic (the group must have
        no live member); returns the new offsets."""
        return reset_offsets(self.engine, group, topic, to)

    def delete_group(self, group: str) -> None:
        self.engine.groups.delete_group(group)

    # ---- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        self.engine.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
