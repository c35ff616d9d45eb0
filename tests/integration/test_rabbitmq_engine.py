"""The amqp:// engine beyond the conformance suite: what survives a process,
a dropped connection, and bad input (RabbitMQ on 127.0.0.1:5672)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import pytest
from rabbit_clients import AMQP
from rabbit_clients import open_client as _open

from tidings import (
    AlreadyExists,
    Client,
    Delivery,
    EngineUnavailable,
    LeaseLost,
    UnsupportedFeature,
)
from tidings.testing.pytest_plugin import require_engine, service_reachable

pytestmark = pytest.mark.engine("rabbitmq")


@pytest.fixture
def name() -> str:
    return f"rmq-{uuid.uuid4().hex[:10]}"


def test_delays_are_stored_in_rabbitmq_not_in_the_process(
    clients: list[Client], name: str
) -> None:
    """Q5: a delayed publish and a nack with delay survive the client that made them."""
    first = _open(clients)
    first.declare_queue(name)
    first.publish(name, b"later", delay="0.5s")
    first.publish(name, b"now")
    (now,) = first.get(name)
    first.nack(now, delay="0.5s")
    first.engine.close()  # without deleting anything: the messages stay in RabbitMQ
    clients.remove(first)
    second = _open(clients)
    got = second.get(name, 5, wait=5)
    got += second.get(name, 5, wait=2) if len(got) < 2 else []
    assert sorted((d.body, d.delivery_count) for d in got) == [(b"later", 1), (b"now", 2)]
    second.ack(got)
    # The delay queue was the first client's: the second one does not know it.
    asyncio.run(_delete(f"{name}.tidings-delay.500"))


async def _delete(queue: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


def test_a_consumer_that_dies_returns_its_messages_counted(
    clients: list[Client], name: str
) -> None:
    """Q1/Q2: closing a client with a lease open returns the message at once
    (RabbitMQ counts the return); past max_deliveries it is dead-lettered with
    our headers on the next claim."""
    first = _open(clients)
    first.declare_queue(name, lease="60s", max_deliveries=1, dead_letter=name + "-dlq")
    first.publish(name, b"job")
    assert [d.delivery_count for d in first.get(name)] == [1]
    first.engine.close()  # dies holding the lease
    clients.remove(first)
    second = _open(clients)
    second.queue(name)
    assert second.get(name, wait=1) == []  # its second delivery would pass max_deliveries
    (dead,) = second.dead_letters(name)
    assert dead.headers["x-dead-letter-reason"] == "max_deliveries"
    assert dead.headers["x-original-queue"] == name and dead.headers["x-delivery-count"] == "1"


def test_publish_resends_after_the_connection_dropped(clients: list[Client], name: str) -> None:
    """A dropped connection: the next publish reconnects and is confirmed;
    leases held on the old channel are lost (RabbitMQ returned them)."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish(name, b"a")
    (held,) = client.get(name)
    engine = client.engine
    connection = engine._link._connection  # type: ignore[attr-defined]
    engine._portal.call(connection.close(), 10)  # type: ignore[attr-defined]
    client.publish(name, b"b")
    with pytest.raises(LeaseLost):
        client.ack(held)
    got = client.get(name, 5, wait=2)
    assert sorted(d.body for d in got) == [b"a", b"b"]
    assert {d.body: d.delivery_count for d in got}[b"a"] == 2


def test_queue_declared_elsewhere_with_other_arguments(clients: list[Client], name: str) -> None:
    """Bad input: a queue someone declared as a classic queue is refused with
    AlreadyExists, and tidings records nothing for it."""

    async def declare_classic() -> None:
        connection = await aio_pika.connect(AMQP)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(name, durable=True)

    asyncio.run(declare_classic())
    try:
        client = _open(clients)
        with pytest.raises(AlreadyExists, match="other arguments"):
            client.declare_queue(name)
        with pytest.raises(LookupError):
            client.queue(name)
    finally:
        asyncio.run(_delete(name))


def test_unsupported_features_say_so(clients: list[Client], name: str) -> None:
    """Features declared unsupported raise UnsupportedFeature, not a driver error."""
    client = _open(clients)
    client.declare_queue(name)
    for call in (
        lambda: client.create_topic(name, compact=True),  # topics run on streams, compaction not
        lambda: client.declare_queue(name + "-f", fifo=True, max_length=5),
        client.queues,
    ):
        with pytest.raises(UnsupportedFeature):
            call()


def test_refused_connection_is_engine_unavailable() -> None:
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        Client("amqp://guest:guest@127.0.0.1:1/")


async def test_async_client_runs_the_engine_on_its_loop(name: str) -> None:
    """An AsyncClient opens the amqp:// engine on its own event loop: its
    publishes are awaited there with no worker thread and no hop (the
    engine's portal is this loop, no thread of its own), and the calls that
    still go through the blocking port from worker threads hop onto it."""
    from tidings import AsyncClient

    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    async with AsyncClient(AMQP) as client:
        engine = (await client._opened()).engine
        portal = engine._portal  # type: ignore[attr-defined]
        assert portal.loop is asyncio.get_running_loop() and not portal.owned
        try:
            await client.declare_queue(name)
            hops: list[object] = []
            threads = client._threads
            real = threads.call

            async def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
                hops.append(fn)
                return await real(fn, *args, **kwargs)

            threads.call = counted  # type: ignore[method-assign]
            threads.submit_wait = None  # type: ignore[assignment]  # the blocking get's path
            ids = [await client.publish(name, b"hi", headers={"h": "1"})]
            ids += await client.publish_batch(name, [b"a", b"b"])
            got = await client.get(name, 3, wait=2)
            assert [d.body for d in got] == [b"hi", b"a", b"b"]
            assert [d.id for d in got] == ids and got[0].headers["h"] == "1"
            await client.nack(got[0])
            await client.reject(got[1], reason="bad")
            await client.ack(got[2])
            (again,) = await client.get(name, 5, wait=2)
            assert (again.id, again.delivery_count) == (ids[0], 2)
            await client.ack(again, connection=None)
            assert await client.get(name, wait=0.2) == []  # waited on the loop, found none
            assert hops == []  # no worker thread for any of it
            threads.call = real  # type: ignore[method-assign]
            assert (await client.queue_stats(name)).ready == 0
            assert [d.body for d in await client.dead_letters(name)] == [b"a"]
            with pytest.raises(TypeError):
                await client.publish(name, b"x", not_an_option=1)
        finally:
            await asyncio.to_thread(engine.queues.delete_declared)  # type: ignore[attr-defined]
    assert not asyncio.get_running_loop().is_closed()  # the client left the loop running


async def test_cancelled_gets_on_the_loop_lose_nothing(name: str) -> None:
    """Gets awaited on the loop, cancelled at random points (0.2-10 ms) while
    messages are there: every message is received exactly once, and none
    was counted as a delivery by a claim nobody saw (a cancelled claim
    completes and puts back what it took, uncounted)."""
    import random

    from tidings import AsyncClient

    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    rng = random.Random(5)
    async with AsyncClient(AMQP) as client:
        await client.declare_queue(name)
        try:
            await client.publish_batch(name, [b"%d" % i for i in range(60)])
            got: list[Delivery] = []
            cancelled = 0
            deadline = time.monotonic() + 60
            while len(got) < 60 and time.monotonic() < deadline:
                try:
                    batch = await asyncio.wait_for(
                        client.get(name, rng.randint(1, 5), wait=0.5), rng.uniform(0.0002, 0.01)
                    )
                except TimeoutError:
                    cancelled += 1
                    continue
                await client.ack(batch)
                got += batch
            assert sorted(int(d.body) for d in got) == list(range(60))
            assert {d.delivery_count for d in got} == {1}, "a cancelled claim counted one"
            assert cancelled > 0
        finally:
            engine = client._client.engine  # type: ignore[union-attr]
            await asyncio.to_thread(engine.queues.delete_declared)  # type: ignore[attr-defined]


async def test_async_client_that_cannot_connect_leaves_nothing_on_its_loop() -> None:
    """The engine runs on the AsyncClient's loop: when it cannot connect,
    the error is EngineUnavailable and no reconnect task is left behind."""
    from tidings import AsyncClient

    before = asyncio.all_tasks()
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        async with AsyncClient("amqp://guest:guest@127.0.0.1:1/"):
            pass
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - before == set()


def test_many_at_once_takes_exactly_what_was_asked(clients: list[Client], name: str) -> None:
    """A claim of several (a consumer for the claim) takes no more than it
    asked, leaves nothing leased behind, and counts each delivery once."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"%d" % i for i in range(50)])
    first = client.get(name, 7)
    assert len(first) == 7
    stats = client.queue_stats(name)
    assert (stats.ready, stats.leased) == (43, 7)
    rest = client.get(name, 100)
    assert [d.body for d in first + rest] == [b"%d" % i for i in range(50)]
    assert {d.delivery_count for d in first + rest} == {1}
    client.ack(first + rest)
    assert client.get(name, 10) == [] and client.queue_stats(name).ready == 0


def test_async_client_used_after_its_loop_ended_says_so(name: str) -> None:
    """The engine runs on the loop the AsyncClient opened it on: used from
    another loop after that one ended, a call fails at once saying why
    (not after the operation timeout)."""
    from tidings import AsyncClient, EngineError

    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    client = AsyncClient(AMQP)

    async def first() -> None:
        await client.declare_queue(name)

    asyncio.run(first())

    async def later() -> None:
        started = time.monotonic()
        with pytest.raises(EngineError, match="no longer running"):
            await client.publish(name, b"x")
        assert time.monotonic() - started < 5

    asyncio.run(later())
    with Client(AMQP) as cleanup:
        cleanup.delete_queue(name)
