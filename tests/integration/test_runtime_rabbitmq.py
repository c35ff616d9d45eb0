"""The consumer runtime's queue handlers on RabbitMQ (amqp://; issue 12).

Failed events go to the SQL database of the URL's ``failed_store=`` option
(SQLite here, PostgreSQL in the triage test). Retries wait in the engine
(emulated nack delay), slow handlers keep their leases (emulated lease
extension), and a graceful stop, with no ``release`` on amqp://, finishes
everything it holds instead (checked against SQLite, which releases).
Each test uses queue names of its own and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.errors import QueueNotFound, UnsupportedFeature
from tidings.ports.failed import FailedFilter
from tidings.runtime import App, HandlerContext, Retry, RetryPolicy, Runner
from tidings.runtime.testing import running
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG = "postgresql://127.0.0.1:5432/test"
FAST = RetryPolicy(immediate=1, delayed=1, backoff=0.01, backoff_max=0.02)

pytestmark = pytest.mark.engine("rabbitmq")


def delete_queues(names: list[str]) -> None:
    """Delete the queues (their dead-letter, delay and catalog queues too)."""
    with Client(AMQP) as client:
        for name in names:
            try:
                client.engine.queues.get_queue(name)
            except QueueNotFound:
                pass
        client.engine.queues.delete_declared()  # type: ignore[attr-defined]


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """``names[0]``: a queue name of this test's own; more can be appended."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    made = [f"rt-{request.node.name[:30]}-{uuid.uuid4().hex[:8]}".replace("[", "-")[:80]]
    made[0] = made[0].replace("]", "")
    yield made
    delete_queues(made)


@pytest.fixture
def url(tmp_path: Path, names: list[str]) -> str:
    return f"{AMQP}?failed_store=sqlite:///{tmp_path / 'failed.db'}"


@pytest.fixture
def pg_failed_url(names: list[str]) -> Iterator[str]:
    """amqp:// with its failed events in a PostgreSQL schema of its own."""
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"rtamqp_{uuid.uuid4().hex[:10]}"
    yield f"{AMQP}?failed_store={PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_runtime_refuses_to_start_without_a_failed_store(names: list[str]) -> None:
    app = App("nostore")

    @app.handler(queue=names[0])
    def handle(payload: bytes) -> None:
        pass

    with pytest.raises(UnsupportedFeature, match="add failed_store="):
        Runner(app, AMQP)


def test_failures_are_retried_parked_and_triaged(pg_failed_url: str, names: list[str]) -> None:
    """R2 on amqp://: immediate try, a delayed round through the engine,
    then parked in PostgreSQL with every R3 field; republish, replay and
    discard work on it, and each action is recorded."""
    queue = names[0]
    app = App("amqpjobs")
    seen: list[int] = []
    fixed: set[int] = set()

    @app.handler(queue=queue, concurrency=3, policy=FAST)
    def handle(payload: dict[str, Any], ctx: HandlerContext) -> None:
        if payload["n"] in (7, 8) and payload["n"] not in fixed:
            raise KeyError(f"n={payload['n']}")
        seen.append(payload["n"])

    with running(app, pg_failed_url, lambda c: c.declare_queue(queue)) as r:
        ids = r.client.publish_batch(queue, [b'{"n": %d}' % n for n in range(30)])
        r.wait_until(lambda: len(seen) == 28 and len(r.failed.find()) == 2, 30)
        by_n = {e.payload: e for e in r.failed.find(FailedFilter(queue=queue))}
        seven = by_n[b'{"n": 7}']
        assert (seven.source, seven.queue, seven.message_id) == ("queue", queue, ids[7])
        assert seven.exception_type == "KeyError" and seven.attempts == FAST.rounds
        assert seven.app == "amqpjobs" and seven.handler == "handle"
        assert len(seven.history) == FAST.rounds  # one entry per failed round
        assert sorted(seen) == [n for n in range(30) if n not in (7, 8)]

        (again,) = r.failed.republish(seven.id)  # fails again: parked with replay_count 1
        assert again.outcome == "ok"
        r.wait_until(lambda: any(e.replay_count == 1 for e in r.failed.find()), 20)
        fixed.add(8)
        eight = by_n[b'{"n": 8}']
        assert r.failed.replay(eight.id, app)[0].detail == "handled"
        assert 8 in seen
        assert [x.outcome for x in r.failed.discard(FailedFilter(queue=queue))] == ["ok"]
        assert r.failed.find(FailedFilter(queue=queue)) == []
        assert {a.action for a in r.failed.actions()} == {"republish", "replay", "discard"}
        assert r.client.queue_stats(queue).ready == 0


def test_a_retry_waits_in_the_engine(url: str, names: list[str]) -> None:
    """Retry(0.5): the message comes back after the delay (an emulated nack
    delay), counted as the next delivery; other messages are not held up."""
    queue = names[0]
    app = App("waits")
    calls: list[tuple[bytes, int, float]] = []

    @app.handler(queue=queue, policy=RetryPolicy(immediate=0, delayed=3))
    def handle(payload: bytes, ctx: HandlerContext) -> Retry | None:
        calls.append((payload, ctx.message.delivery_count, time.monotonic()))
        if payload == b"later" and ctx.message.delivery_count == 1:
            return Retry(0.5)
        return None

    with running(app, url, lambda c: c.declare_queue(queue)) as r:
        r.client.publish(queue, b"later")
        r.client.publish(queue, b"now")
        r.wait_until(lambda: len(calls) == 3, 20)
    later = [c for c in calls if c[0] == b"later"]
    assert [c[1] for c in later] == [1, 2]
    assert later[1][2] - later[0][2] >= 0.45  # measured gap: the delay was kept
    now = next(c for c in calls if c[0] == b"now")
    assert now[2] < later[1][2]  # not blocked behind the waiting message


def test_the_queues_max_deliveries_dead_letters_before_the_policy_parks(
    url: str, names: list[str]
) -> None:
    """max_deliveries=2 below the policy's 4 rounds: the engine dead-letters
    the message on its last nack (Q2), nothing is parked; a queue without
    the limit gets the message parked after the policy's rounds."""
    limited, free = names[0], names[0] + "-free"
    names.append(free)
    app = App("limits")
    tries: dict[str, int] = {limited: 0, free: 0}
    policy = RetryPolicy(immediate=0, delayed=3, backoff=0.01, backoff_max=0.02)

    @app.handler(queue=limited, policy=policy)
    def capped(payload: bytes) -> None:
        tries[limited] += 1
        raise RuntimeError("always")

    @app.handler(queue=free, policy=policy)
    def uncapped(payload: bytes) -> None:
        tries[free] += 1
        raise RuntimeError("always")

    def prepare(c: Client) -> None:
        c.declare_queue(limited, max_deliveries=2)
        c.declare_queue(free)

    with running(app, url, prepare) as r:
        r.client.publish(limited, b"x")
        r.client.publish(free, b"y")
        r.wait_until(lambda: len(r.client.dead_letters(limited)) == 1, 20)
        r.wait_until(lambda: len(r.failed.find()) == 1, 20)
        (dead,) = r.client.dead_letters(limited)
        assert dead.headers["x-dead-letter-reason"] == "max_deliveries"
        (parked,) = r.failed.find()
        assert parked.queue == free and parked.attempts == policy.rounds
    assert tries == {limited: 2, free: policy.rounds}


def test_a_slow_handler_keeps_its_leases(url: str, names: list[str]) -> None:
    """Handling for 2.5 leases: the runtime extends the lease (emulated on
    amqp://), so the message is not given to anyone else and is handled once."""
    queue = names[0]
    app = App("slow")
    calls: list[int] = []
    started = threading.Event()

    @app.handler(queue=queue)
    def handle(payload: bytes, ctx: HandlerContext) -> None:
        calls.append(ctx.message.delivery_count)
        started.set()
        time.sleep(1.5)

    with running(app, url, lambda c: c.declare_queue(queue, lease="0.6s")) as r:
        r.client.publish(queue, b"job")
        assert started.wait(10)
        with Client(url) as other:  # another consumer, two lease lengths later
            assert other.get(queue, wait=1.2) == []
        r.wait_until(lambda: r.client.queue_stats(queue).leased == 0)
    assert calls == [1]
    with Client(url) as check:
        assert check.get(queue, wait=0.5) == []


@pytest.fixture(params=["sqlite", "amqp"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, queue) on SQLite (release supported) and amqp:// (not)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bus.db'}", "held"
        return
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    queue = f"rt-stop-{uuid.uuid4().hex[:8]}"
    yield f"{AMQP}?failed_store=sqlite:///{tmp_path / 'failed.db'}", queue
    delete_queues([queue])


def test_graceful_stop_gives_back_or_finishes_what_it_holds(any_url: tuple[str, str]) -> None:
    """R4: stop while a batch of 6 is in hand. With ``release`` (SQLite) the
    messages not yet handed to the handler go back uncounted; without it
    (amqp://, Features.release unsupported) all six are finished and acked
    rather than nacked (a nack would count a delivery). Nothing is lost."""
    url, queue = any_url
    app = App("stopper")
    handled: list[bytes] = []
    published, batch_started = threading.Event(), threading.Event()

    @app.handler(queue=queue, max_in_flight=6)
    def handle(payload: bytes) -> None:
        if payload == b"warm":  # the first lease is of one message: hold the loop
            assert published.wait(10)  # until the batch of six is in the queue
            return
        batch_started.set()
        time.sleep(0.2)
        handled.append(payload)

    with Client(url) as client:
        client.declare_queue(queue, lease="30s")
        client.publish(queue, b"warm")
        releases = client.features.supports("release")
        runner = Runner(app, client=client).start()
        client.publish_batch(queue, [b"m%d" % i for i in range(6)])
        published.set()
        assert batch_started.wait(10)
        started = time.monotonic()
        runner.stop()
        took = time.monotonic() - started
        rest = client.get(queue, 10, wait=1.0)
        assert sorted(handled + [d.body for d in rest]) == [b"m%d" % i for i in range(6)]
        assert [d.delivery_count for d in rest] == [1] * len(rest)  # nothing counted
        if releases:
            assert 1 <= len(handled) < 6 and took < 1.0  # the rest went back at once
        else:
            assert len(handled) == 6 and rest == [] and took >= 0.8  # finished all six
        client.ack(rest)


def test_an_async_handler_with_concurrency(url: str, names: list[str]) -> None:
    """An ``async def`` queue handler: lanes run concurrently on its event
    loop; a failure is parked like a sync handler's."""
    queue = names[0]
    app = App("asyncjobs")
    seen: list[int] = []
    active, peak = [0], [0]

    @app.handler(queue=queue, concurrency=4, policy=FAST)
    async def handle(payload: dict[str, int]) -> None:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.02)
        active[0] -= 1
        if payload["n"] == 3:
            raise ValueError("three")
        seen.append(payload["n"])

    with running(app, url, lambda c: c.declare_queue(queue)) as r:
        r.client.publish_batch(queue, [b'{"n": %d}' % n for n in range(20)])
        r.wait_until(lambda: len(seen) == 19 and len(r.failed.find()) == 1, 30)
        assert r.failed.find()[0].exception_type == "ValueError"
    assert sorted(seen) == [n for n in range(20) if n != 3] and peak[0] > 1
