"""The asyncio face: cancelling loses nothing, waits never starve short calls,
and nothing blocking runs on the event loop."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tidings import AsyncClient, Client, ConfigurationError, TopicPartition
from tidings.client import client as client_module
from tidings.testing import FAST_GROUP, require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class _NoDefaultExecutor(ThreadPoolExecutor):
    """Installed as the loop's default executor: any use of it is a bug."""

    used = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        _NoDefaultExecutor.used = True
        raise AssertionError("tidings used the event loop's default executor")


def _produce_every_2ms(url: str, topic: str, n: int, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        with Client(url) as c:
            p = c.producer()
            for i in range(n):
                if stop.is_set():
                    return
                p.send(topic, b"%d" % i).result()
                time.sleep(0.002)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.engine("sqlite")),
        pytest.param("postgresql", marks=pytest.mark.engine("postgresql")),
    ]
)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL two clients (two engine instances) can share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG}?schema={schema}"
    import psycopg

    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_cancelled_polls_lose_nothing(shared_url: str) -> None:
    """L5: polls cancelled at random points (1-30 ms) while records arrive
    every 2 ms: every record is returned exactly once, in order, and the
    group's committed offset never passes what was returned."""
    url = shared_url
    topic, group, n = _name(), _name(), 600
    rng = random.Random(8)
    async with AsyncClient(url) as client:
        await client.create_topic(topic)
        tp = TopicPartition(topic, 0)
        consumer = await client.consumer(
            topic, group, start="beginning", auto_commit_interval_s=0.01, group_config=FAST_GROUP
        )
        stop = threading.Event()
        producing = _produce_every_2ms(url, topic, n, stop)
        got: list[int] = []
        cancelled = 0
        deadline = time.monotonic() + 60
        try:
            async with consumer:
                while len(got) < n and time.monotonic() < deadline:
                    try:
                        batch = await asyncio.wait_for(
                            consumer.poll(timeout=0.05, max_records=rng.randint(1, 50)),
                            rng.uniform(0.001, 0.03),
                        )
                    except TimeoutError:
                        cancelled += 1
                        continue
                    got.extend(int(r.value or b"") for r in batch)
                    committed = (await client.describe_group(group)).partitions
                    assert all(p.committed is None or p.committed <= len(got) for p in committed)
        finally:
            stop.set()
            producing.join(10)
        assert got == list(range(n))
        assert cancelled > 20  # the test did cancel reads under way
        committed = {
            p.partition: p.committed for p in (await client.describe_group(group)).partitions
        }
        assert committed == {tp.partition: n}


async def test_async_for_commits_only_what_was_yielded() -> None:
    """L5: leaving an ``async for`` after 3 of 100 records commits 3."""
    async with AsyncClient("memory://") as client:
        topic, group = _name(), _name()
        await client.create_topic(topic)
        await client.producer().send_batch(topic, [b"x"] * 100)
        consumer = await client.consumer(topic, group, start="beginning", group_config=FAST_GROUP)
        async with consumer:
            seen = 0
            async for _ in consumer:
                seen += 1
                if seen == 3:
                    break
        (info,) = (await client.describe_group(group)).partitions
        assert info.committed == 3


async def test_idle_waits_do_not_delay_a_publish() -> None:
    """More idle get(wait=3) than the loop's default executor has threads:
    an unrelated publish still completes at once."""
    idle = min(32, (os.cpu_count() or 1) + 4)  # the default executor's size
    async with AsyncClient("memory://") as client:
        await client.declare_queue("idle")
        await client.declare_queue("busy")
        waits = [asyncio.ensure_future(client.get("idle", wait=3)) for _ in range(idle)]
        await asyncio.sleep(0.2)  # let the waits reach their threads
        start = time.monotonic()
        await client.publish("busy", b"now")
        took = time.monotonic() - start
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    assert took < 0.5, f"publish waited {took:.2f}s behind idle gets"


async def test_the_default_executor_is_never_used() -> None:
    """Blocking calls run on tidings' own threads, sized by configuration,
    never on the loop's default executor (DNS resolution's)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(_NoDefaultExecutor())
    async with AsyncClient("memory://", threads=1, waiting_threads=2) as client:
        topic = _name()
        await client.create_topic(topic)
        await client.produce(topic, b"x")
        await client.declare_queue(topic)
        await client.publish(topic, b"m")
        (d,) = await client.get(topic, wait=1)
        await client.ack(d)
        waits = [asyncio.ensure_future(client.get(topic, wait=0.3)) for _ in range(4)]
        assert await asyncio.gather(*waits) == [[]] * 4  # queued for the two waiting threads
    assert not _NoDefaultExecutor.used


def test_thread_options_are_validated() -> None:
    """Bad pool sizes fail at construction, naming the option."""
    with pytest.raises(ConfigurationError, match="waiting_threads"):
        AsyncClient("memory://", waiting_threads=0)
    with pytest.raises(ConfigurationError, match="threads"):
        AsyncClient("memory://", threads=1.5)  # type: ignore[arg-type]


async def test_cancelled_get_puts_its_claim_back_uncounted() -> None:
    """Q1/Q2: a get cancelled while its claim runs releases what it leased:
    the message is ready again with no delivery counted."""
    async with AsyncClient("memory://") as client:
        await client.declare_queue("cq", max_deliveries=1, dead_letter="cq.dlq")
        waiting = asyncio.ensure_future(client.get("cq", wait=5))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await client.publish("cq", b"m")  # the cancelled wait claims it
        with pytest.raises(asyncio.CancelledError):
            await waiting
        (d,) = await client.get("cq", wait=5)
        assert (d.body, d.delivery_count) == (b"m", 1)
        await client.ack(d)
        assert await client.dead_letters("cq") == []


async def test_nothing_blocking_runs_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the engine, the first send to a topic, closing subscribe and
    seeking all happen off the event loop's thread."""
    loop_thread = threading.current_thread()
    on_loop: list[str] = []
    real_open = client_module.open_engine

    def spy_open(url: str) -> Any:
        if threading.current_thread() is loop_thread:
            on_loop.append("open")
        engine = real_open(url)
        for name, owner in (
            ("get_topic", engine.log),
            ("release", engine.queues),
            ("settle", engine.queues),
        ):
            real = getattr(owner, name)

            def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
                if threading.current_thread() is loop_thread:
                    on_loop.append(_name)
                return _real(*args)

            setattr(owner, name, spy)
        return engine

    monkeypatch.setattr(client_module, "open_engine", spy_open)
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    async with AsyncClient(url) as client:
        topic = _name()
        await client.create_topic(topic)
        producer = client.producer()
        first = producer.send(topic, b"a")
        assert (await first).offset == 0
        await producer.aclose()
        await client.declare_queue("sq")
        await client.publish_batch("sq", [b"1", b"2", b"3"])
        stream = client.subscribe("sq", prefetch=3)
        await stream.__anext__()
        await stream.aclose()
        assert (await client.queue_stats("sq")).ready == 2
    assert on_loop == []
    opened = await AsyncClient.open(url)
    assert [q.name for q in await opened.queues()] == ["sq"]
    await opened.aclose()
    assert on_loop == []


async def test_seek_from_the_loop_applies_before_the_next_poll() -> None:
    """L5: seek never touches the consumer while its thread reads; it takes
    effect before the next call, and unassigned partitions are refused."""
    async with AsyncClient("memory://") as client:
        topic = _name()
        await client.create_topic(topic)
        await client.producer().send_batch(topic, [b"a", b"b", b"c"])
        consumer = await client.consumer(topic, start="end")
        async with consumer:
            reading = asyncio.ensure_future(consumer.poll(timeout=0.3))
            await asyncio.sleep(0.1)  # the consumer's thread is inside poll now
            consumer.seek(TopicPartition(topic, 0), 1)
            assert await reading == []
            with pytest.raises(ConfigurationError):
                consumer.seek(TopicPartition(topic, 5), 0)
            assert [r.offset for r in await consumer.poll(timeout=1)] == [1, 2]
