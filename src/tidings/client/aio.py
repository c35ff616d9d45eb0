"""``AsyncClient``: the asyncio face of :class:`Client`.

The logic lives once, in the blocking core; each async method is one line
that runs its blocking twin on tidings' own threads (one thread hop per
*call*: a batch, a poll, an admin operation — never per record; see
:mod:`.aio_threads`). Producer acks need no hop at all. Nothing blocking
runs on the event loop: opening the engine (connect, migrate, start
threads) happens on a thread too. See docs/architecture.md ("Sync and
async") for why this is the design.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..codecs import BYTES, Codec
from ..config import AsyncConfig, ProducerConfig, TopicConfig, default_url
from ..message import RecordMetadata, TopicPartition
from ..ports.engine import Engine, MaintenanceStatus
from ..ports.log import PartitionInfo
from ..tracing import ENABLED as TRACING
from ..tracing import inject
from .admin import GroupInfo
from .aio_consumer import AsyncConsumer
from .aio_producer import AsyncProducer
from .aio_queues import AsyncQueueMethods
from .aio_threads import Threads
from .client import Client
from .producer import Producer
from .starts import Start

__all__ = ["AsyncClient", "AsyncConsumer", "AsyncProducer"]
R = TypeVar("R")


class AsyncClient(AsyncQueueMethods):
    """The asyncio client; it opens the engine off the event loop, on first
    use or explicitly::

        async with AsyncClient("sqlite:///bus.db") as client:
            await client.create_topic("bookings", partitions=3)
            await client.produce("bookings", b"hello", key="b-1")

        client = await AsyncClient.open("sqlite:///bus.db")

    ``threads`` and ``waiting_threads`` size its thread pools (see
    :class:`~tidings.config.AsyncConfig`). Raises ConfigurationError for a
    bad option (at once) or URL, EngineUnavailable when the engine cannot
    be opened (from ``open`` or the first call).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        threads: int = 4,
        waiting_threads: int = 32,
    ) -> None:
        self._url, self._engine = url, engine
        self._threads = Threads(AsyncConfig(threads, waiting_threads))
        # Given an engine there is nothing to open: a Client around it does no I/O.
        self._client: Client | None = None if engine is None else Client(engine=engine)
        self._opening: asyncio.Lock | None = None

    @classmethod
    async def open(cls, url: str | None = None, **options: Any) -> AsyncClient:
        """An opened client (engine connected and migrated off the loop)."""
        client = cls(url, **options)
        await client._opened()
        return client

    @property
    def url(self) -> str:
        """The engine URL (known once opened; the URL given before that)."""
        return self._client.url if self._client is not None else self._url or default_url()

    async def create_topic(self, name: str, partitions: int = 1, **options: Any) -> TopicConfig:
        return await self._do(Client.create_topic, name, partitions, **options)

    async def topics(self) -> list[TopicConfig]:
        return await self._do(Client.topics)

    async def topic(self, name: str) -> TopicConfig:
        return await self._do(Client.topic, name)

    async def partitions(self, name: str) -> list[PartitionInfo]:
        return await self._do(Client.partitions, name)

    async def add_partitions(self, name: str, total: int) -> None:
        await self._do(Client.add_partitions, name, total)

    async def delete_topic(self, name: str) -> None:
        await self._do(Client.delete_topic, name)

    async def compact(self, name: str) -> int:
        return await self._do(Client.compact, name)

    async def enforce_retention(self, name: str) -> int:
        return await self._do(Client.enforce_retention, name)

    async def maintenance_status(self) -> MaintenanceStatus:
        """See :meth:`Client.maintenance_status`."""
        return await self._do(Client.maintenance_status)

    def producer(self, codec: Codec[Any] = BYTES, **options: Any) -> AsyncProducer:
        """A batching producer (never blocks the loop); ``options`` are
        :class:`ProducerConfig` fields, validated now (ConfigurationError)."""
        config = ProducerConfig(**options)

        async def make() -> Producer:
            return Producer((await self._opened()).engine, config, codec)

        ready = None if self._client is None else Producer(self._client.engine, config, codec)
        return AsyncProducer(make, self._threads, config, ready)

    async def produce(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RecordMetadata:
        if TRACING:  # in the caller's context, before the thread hop
            headers = dict(inject(headers) or {}) or None
        return await self._wait(Client.produce, topic, value, key, headers)

    async def consumer(
        self, topics: list[str] | str, group: str | None = None, **options: Any
    ) -> AsyncConsumer:
        """A consumer on a thread of its own; see :class:`Consumer`."""
        client = await self._opened()
        executor = ThreadPoolExecutor(1, thread_name_prefix="tidings-consumer")
        loop = asyncio.get_running_loop()
        try:
            consumer = await loop.run_in_executor(
                executor, lambda: client.consumer(topics, group, **options)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return AsyncConsumer(consumer, executor)

    async def groups(self) -> list[str]:
        return await self._do(Client.groups)

    async def describe_group(self, group: str) -> GroupInfo:
        return await self._do(Client.describe_group, group)

    async def reset_offsets(self, group: str, topic: str, to: Start) -> dict[TopicPartition, int]:
        return await self._do(Client.reset_offsets, group, topic, to)

    async def aclose(self) -> None:
        try:
            if self._client is not None:
                await self._threads.wait(self._client.close)
        finally:
            self._threads.shutdown()

    async def __aenter__(self) -> AsyncClient:
        await self._opened()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
