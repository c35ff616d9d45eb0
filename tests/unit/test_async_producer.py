"""AsyncProducer.send: one callback per flight resolves every record's future."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tidings import AsyncClient, EngineProtocolError, TopicNotFound


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_records_sent_before_the_topic_is_known_keep_their_order() -> None:
    """L2: sends issued while the topic's settings load are stored in send
    order, each future with its own offset; a cancelled future does not
    stop the others."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        producer = client.producer()
        futures = [producer.send(topic, b"%d" % i) for i in range(50)]
        futures[10].cancel()
        await producer.flush()
        metas = [await f for i, f in enumerate(futures) if i != 10]
        assert [m.offset for m in metas] == [i for i in range(50) if i != 10]
        consumer = await client.consumer(topic, start="beginning")
        async with consumer:
            got = await consumer.poll(timeout=1)
        assert [r.value for r in got] == [b"%d" % i for i in range(50)]
        await producer.aclose()


async def test_unknown_topic_fails_every_waiting_record() -> None:
    """The first sends to a missing topic all fail with TopicNotFound."""
    async with AsyncClient("memory://") as client:
        producer = client.producer()
        futures = [producer.send("missing-" + _name(), b"x") for _ in range(3)]
        for f in futures:
            with pytest.raises(TopicNotFound):
                await f
        await producer.aclose()


async def test_a_failed_append_fails_each_record_of_the_flight() -> None:
    """L1: when the engine refuses an append, every record's future of the
    flight raises that error (nothing reported as stored)."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        opened = await client._opened()

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise EngineProtocolError("refused by the test")

        opened.engine.log.append = refuse  # type: ignore[method-assign]
        producer = client.producer(linger_s=0.05)
        futures = [producer.send(topic, b"x") for _ in range(20)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, EngineProtocolError) for r in results)
        await producer.aclose()


async def test_send_creates_no_task_per_record() -> None:
    """send costs a plain future per record, not a Task: 1,000 sends to a
    known topic leave no task behind."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        producer = client.producer()
        await producer.send(topic, b"first")  # the topic's settings are known now
        before = len(asyncio.all_tasks())
        futures = [producer.send(topic, b"x") for _ in range(1000)]
        assert len(asyncio.all_tasks()) == before
        assert [(await f).offset for f in futures] == list(range(1, 1001))
        await producer.aclose()
