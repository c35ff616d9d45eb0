"""AsyncClient: the asyncio face of Client behaves the same (memory engine)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tidings import (
    JSON,
    AlreadyExists,
    AsyncClient,
    FencedError,
    SerializationError,
    TopicNotFound,
    TopicPartition,
)
from tidings.testing import FAST_GROUP


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_topics_admin() -> None:
    """Topics: create, list, describe, add partitions and delete from asyncio."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic, partitions=2)
        with pytest.raises(AlreadyExists):
            await client.create_topic(topic)
        assert [t.name for t in await client.topics()] == [topic]
        await client.add_partitions(topic, 3)
        assert (await client.topic(topic)).partitions == 3
        assert [i.next_offset for i in await client.partitions(topic)] == [0, 0, 0]
        await client.delete_topic(topic)
        with pytest.raises(TopicNotFound):
            await client.topic(topic)


async def test_produce_and_consume_in_order() -> None:
    """L2: awaited produces get dense offsets; a consumer reads them back in order."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        metas = [await client.produce(topic, f"v{i}".encode(), key="k") for i in range(3)]
        assert [m.offset for m in metas] == [0, 1, 2]
        consumer = await client.consumer(topic, start="beginning")
        async with consumer:
            got = await consumer.poll(timeout=1)
            assert [(r.offset, r.value) for r in got] == [(0, b"v0"), (1, b"v1"), (2, b"v2")]
            assert await consumer.lag() == {TopicPartition(topic, 0): 0}


async def test_producer_futures_resolve_when_stored() -> None:
    """L1/L2: AsyncProducer.send returns futures resolved once stored;
    send_batch returns metadata in input order; codec errors surface."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        async with client.producer(codec=JSON, linger_s=0.001) as producer:
            futures = [producer.send(topic, {"n": i}) for i in range(5)]
            metas = await asyncio.gather(*futures)
            assert [m.offset for m in metas] == [0, 1, 2, 3, 4]
            batch = await producer.send_batch(topic, [{"n": 5}, {"n": 6}])
            assert [m.offset for m in batch] == [5, 6]
            with pytest.raises(SerializationError):
                await producer.send_batch(topic, [object()])
        assert (await client.partitions(topic))[0].next_offset == 7


async def test_consumer_wakes_on_produce() -> None:
    """Wake-up: an awaited poll returns a record produced while it waits,
    without blocking the event loop."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        consumer = await client.consumer(topic, start="end")
        async with consumer:
            polling = asyncio.ensure_future(consumer.poll(timeout=20))
            await asyncio.sleep(0.1)  # the loop stays free while poll waits
            assert not polling.done()
            await client.produce(topic, b"ping")
            got = await asyncio.wait_for(polling, 5)
        assert [r.value for r in got] == [b"ping"]


async def test_group_commit_resume_and_describe() -> None:
    """L5: an async group member commits; the group is described with the
    committed offset; a new member resumes there; foreign commits are fenced."""
    async with AsyncClient("memory://") as client:
        topic, group = _name(), _name()
        await client.create_topic(topic)
        await client.producer().send_batch(topic, [b"a", b"b", b"c"])
        tp = TopicPartition(topic, 0)
        first = await client.consumer(
            topic, group, start="beginning", auto_commit=False, group_config=FAST_GROUP
        )
        async with first:
            assert [r.offset for r in await first.poll(timeout=1)] == [0, 1, 2]
            assert first.assignment() == {tp}
            await first.commit({tp: 2})
            with pytest.raises(FencedError):
                await first.commit({TopicPartition(topic, 3): 0})
            info = await client.describe_group(group)
            assert [(r.committed, r.lag) for r in info.partitions] == [(2, 1)]
        assert group in await client.groups()
        second = await client.consumer(topic, group, start="end", group_config=FAST_GROUP)
        async with second:
            assert [r.offset for r in await second.poll(timeout=1)] == [2]
        assert await client.reset_offsets(group, topic, "beginning") == {tp: 0}


async def test_async_iteration_and_seek() -> None:
    """L5: async iteration yields records; seek_to rewinds."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        await client.producer().send_batch(topic, [b"x", b"y"])
        consumer = await client.consumer(topic, start="end")
        async with consumer:
            await consumer.seek_to("beginning")
            seen = []
            async for record in consumer:
                seen.append(record.offset)
                if len(seen) == 2:
                    break
            assert seen == [0, 1]
            consumer.seek(TopicPartition(topic, 0), 1)
            assert [r.offset for r in await consumer.poll(timeout=1)] == [1]


async def test_retention_and_compaction_calls() -> None:
    """L6: enforce_retention and compact are available from asyncio."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic, compact=True)
        await client.produce(topic, b"1", key="k")
        await client.produce(topic, b"2", key="k")
        assert await client.compact(topic) == 1
        assert await client.enforce_retention(topic) == 0


async def test_async_client_reports_maintenance_status() -> None:
    """The asyncio client tells when background maintenance last ran, as
    the blocking one does."""
    async with AsyncClient("memory://") as client:
        status = await client.maintenance_status()
    assert status.running and status.failures == 0 and status.last_error is None
