"""``AsyncClient``: the asyncio face of :class:`Client`.

The logic lives once, in the blocking core; each async method is one line
that runs its blocking twin off the event loop (one thread hop per *call*:
a batch, a poll, an admin operation — never per record). Producer acks are
awaited through the batch's shared future, with no hop at all. See
docs/architecture.md ("Sync and async") for why this is the design.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ..codecs import BYTES, Codec
from ..config import TopicConfig
from ..message import Headers, Record, RecordMetadata, TopicPartition
from ..ports.engine import Engine
from ..ports.log import PartitionInfo
from .admin import GroupInfo
from .aio_queues import AsyncQueueMethods
from .client import Client
from .consumer import Consumer, Start
from .producer import Ack, BatchMetadata, Producer

R = TypeVar("R")


async def _run(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


async def _ack(ack: Ack) -> RecordMetadata:
    await asyncio.wrap_future(ack.future)
    return ack.result()


class AsyncProducer:
    """See :class:`Producer`; ``await producer.send(...)`` waits for durability."""

    def __init__(self, producer: Producer) -> None:
        self._p = producer

    def send(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Buffer one record now; the returned future resolves when durable."""
        return asyncio.ensure_future(_ack(self._p.send(topic, value, key, headers, partition)))

    async def send_batch(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[bytes | str | None] | None = None,
        headers: Sequence[Headers] | None = None,
        partition: int | None = None,
    ) -> BatchMetadata:
        return await _run(self._p.send_batch, topic, values, keys, headers, partition)

    async def flush(self) -> None:
        await _run(self._p.flush)

    async def aclose(self) -> None:
        await _run(self._p.close)

    async def __aenter__(self) -> AsyncProducer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncConsumer:
    """See :class:`Consumer`. Runs on one dedicated thread, since a consumer
    is single-threaded and keeps its own read connection."""

    def __init__(self, consumer: Consumer, executor: ThreadPoolExecutor) -> None:
        self._c = consumer
        self._ex = executor

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._ex, partial(fn, *args))

    async def poll(self, timeout: float = 1.0, max_records: int = 10_000) -> list[Record]:
        return await self._call(self._c.poll, timeout, max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        await self._call(self._c.commit, offsets)

    async def seek_to(self, where: Start, tps: list[TopicPartition] | None = None) -> None:
        await self._call(self._c.seek_to, where, tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._c.seek(tp, offset)

    def assignment(self) -> set[TopicPartition]:
        return self._c.assignment()

    async def lag(self) -> dict[TopicPartition, int]:
        return await self._call(self._c.lag)

    async def aclose(self) -> None:
        try:
            await self._call(self._c.close)
        finally:
            self._ex.shutdown(wait=False)

    def __aiter__(self) -> AsyncIterator[Record]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Record]:
        while True:
            for record in await self.poll():
                yield record

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncClient(AsyncQueueMethods):
    """The asyncio client::

    async with AsyncClient("sqlite:///bus.db") as client:
        await client.create_topic("bookings", partitions=3)
        await client.produce("bookings", b"hello", key="b-1")
    """

    def __init__(self, url: str | None = None, *, engine: Engine | None = None) -> None:
        self._sync = Client(url, engine=engine)

    @property
    def url(self) -> str:
        return self._sync.url

    async def create_topic(self, name: str, partitions: int = 1, **options: Any) -> TopicConfig:
        return await _run(self._sync.create_topic, name, partitions, **options)

    async def topics(self) -> list[TopicConfig]:
        return await _run(self._sync.topics)

    async def topic(self, name: str) -> TopicConfig:
        return await _run(self._sync.topic, name)

    async def partitions(self, name: str) -> list[PartitionInfo]:
        return await _run(self._sync.partitions, name)

    async def add_partitions(self, name: str, total: int) -> None:
        await _run(self._sync.add_partitions, name, total)

    async def delete_topic(self, name: str) -> None:
        await _run(self._sync.delete_topic, name)

    async def compact(self, name: str) -> int:
        return await _run(self._sync.compact, name)

    async def enforce_retention(self, name: str) -> int:
        return await _run(self._sync.enforce_retention, name)

    def producer(self, codec: Codec[Any] = BYTES, **options: Any) -> AsyncProducer:
        return AsyncProducer(self._sync.producer(codec, **options))

    async def produce(
        self,
        topic: str,
        value: Any,
        key: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RecordMetadata:
        return await _run(self._sync.produce, topic, value, key, headers)

    async def consumer(
        self, topics: list[str] | str, group: str | None = None, **options: Any
    ) -> AsyncConsumer:
        executor = ThreadPoolExecutor(1, thread_name_prefix="tidings-consumer")
        loop = asyncio.get_running_loop()
        consumer = await loop.run_in_executor(
            executor, partial(self._sync.consumer, topics, group, **options)
        )
        return AsyncConsumer(consumer, executor)

    async def groups(self) -> list[str]:
        return await _run(self._sync.groups)

    async def describe_group(self, group: str) -> GroupInfo:
        return await _run(self._sync.describe_group, group)

    async def reset_offsets(self, group: str, topic: str, to: Start) -> dict[TopicPartition, int]:
        return await _run(self._sync.reset_offsets, group, topic, to)

    async def aclose(self) -> None:
        await _run(self._sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
