"""The runtime on every engine where the engine matters: memory, SQLite,
PostgreSQL, RabbitMQ (R1, R2, R3, R5; issues 10, 12). A test skips on an
engine only where its Features declare what the test needs absent; names
are unique per test (RabbitMQ is a shared server)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.errors import QueueNotFound, TopicNotFound
from tidings.ports.failed import FailedFilter
from tidings.runtime import App, HandlerContext, Inbox, RetryPolicy
from tidings.runtime.testing import running
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
FAST = RetryPolicy(immediate=1, delayed=1, backoff=0.01, backoff_max=0.02)


@pytest.fixture
def uniq() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(params=["memory", "sqlite", "postgresql", "amqp"])
def url(request: pytest.FixtureRequest, tmp_path: Path, uniq: str) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bus.db'}"
    elif request.param == "amqp":
        require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
        yield f"{AMQP}?failed_store=sqlite:///{tmp_path / 'failed.db'}"
        _delete_queues(uniq)
    else:
        require_engine("postgresql", service_reachable("127.0.0.1", 5432))
        import psycopg

        schema = f"rt_{uuid.uuid4().hex[:10]}"
        yield f"{PG}?schema={schema}"
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _delete_queues(uniq: str) -> None:
    """The RabbitMQ queues and topics of one test (its names end in ``uniq``)."""
    with Client(AMQP) as client:
        for name in (f"work-{uniq}", f"jobs-{uniq}"):
            try:
                client.engine.queues.get_queue(name)
            except QueueNotFound:
                pass
        client.engine.queues.delete_declared()  # type: ignore[attr-defined]
        if client.features.supports("logs"):
            for topic in (f"events-{uniq}", f"payments-{uniq}"):
                try:
                    client.delete_topic(topic)
                except TopicNotFound:
                    pass


def need(url: str, *features: str) -> None:
    """Skip where the engine declares one of ``features`` unsupported."""
    with Client(url) as client:
        for feature in features:
            if not client.features.supports(feature):
                pytest.skip(f"{url.split('?', maxsplit=1)[0]} does not support {feature}")


def test_ordered_concurrency_and_parking(url: str, uniq: str) -> None:
    need(url, "logs")
    app = App("orders")
    by_key: dict[str, list[int]] = defaultdict(list)
    active: set[int] = set()
    overlap: list[int] = []
    lock = threading.Lock()

    @app.handler(topic=f"events-{uniq}", concurrency=3, policy=FAST)
    def handle(payload: dict[str, Any], ctx: HandlerContext) -> None:
        part = ctx.message.partition
        with lock:
            if part in active:
                overlap.append(part)  # two records of one partition at once: R1 broken
            active.add(part)
        try:
            if payload["n"] == 13:
                raise ValueError("unlucky")
            by_key[payload["k"]].append(payload["n"])
        finally:
            with lock:
                active.discard(part)

    def prepare(client: Client) -> None:
        client.create_topic(f"events-{uniq}", partitions=3)

    with running(app, url, prepare) as r:
        with r.client.producer() as producer:
            for n in range(300):
                producer.send(
                    f"events-{uniq}", b'{"n": %d, "k": "k%d"}' % (n, n % 10), key=f"k{n % 10}"
                )
        r.wait_until(
            lambda: sum(map(len, by_key.values())) == 299 and len(r.failed.find()) == 1, 30
        )
        (event,) = r.failed.find()
        assert event.exception_type == "ValueError" and event.attempts == FAST.rounds
        assert event.key == b"k3" and event.topic == f"events-{uniq}"
        assert all(v == sorted(v) for v in by_key.values())
        assert overlap == []
        assert r.failed.republish(event.id)[0].outcome == "ok"
        r.wait_until(lambda: len(r.failed.find()) == 1 and r.failed.find()[0].replay_count == 1)


def test_queue_handler_and_fifo_groups(url: str, uniq: str) -> None:
    need(url, "fifo_groups")
    app = App("jobs")
    seen: dict[str, list[int]] = defaultdict(list)

    @app.handler(queue=f"work-{uniq}", concurrency=3, policy=FAST)
    def handle(payload: dict[str, Any], ctx: HandlerContext) -> None:
        if payload["n"] == 7:
            raise KeyError("seven")
        seen[ctx.message.group].append(payload["n"])

    def prepare(client: Client) -> None:
        client.declare_queue(f"work-{uniq}", fifo=True)

    with running(app, url, prepare) as r:
        for n in range(30):
            r.client.publish(f"work-{uniq}", b'{"n": %d}' % n, group=f"g{n % 3}")
        r.wait_until(lambda: sum(map(len, seen.values())) == 29 and len(r.failed.find()) == 1, 30)
        assert all(v == sorted(v) for v in seen.values())  # order per FIFO group (R1)
        (event,) = r.failed.find(FailedFilter(queue=f"work-{uniq}"))
        assert event.key == b"g1" and event.attempts == FAST.rounds


def test_queue_handler_concurrency_retries_and_parking(url: str, uniq: str) -> None:
    """Q1 + R2 on a plain queue, every engine: concurrent lanes, a failing
    message retried through a delayed nack and parked, the rest acked once."""
    queue = f"jobs-{uniq}"
    app = App("plain")
    seen: list[int] = []
    lock = threading.Lock()

    @app.handler(queue=queue, concurrency=3, policy=FAST)
    def handle(payload: dict[str, Any], ctx: HandlerContext) -> None:
        if payload["n"] == 7:
            raise KeyError("seven")
        with lock:
            seen.append(payload["n"])

    with running(app, url, lambda c: c.declare_queue(queue)) as r:
        ids = r.client.publish_batch(queue, [b'{"n": %d}' % n for n in range(40)])
        r.wait_until(lambda: len(seen) == 39 and len(r.failed.find()) == 1, 30)
        (event,) = r.failed.find(FailedFilter(queue=queue))
        assert (event.message_id, event.payload) == (ids[7], b'{"n": 7}')
        assert event.attempts == FAST.rounds and event.exception_type == "KeyError"
        r.wait_until(lambda: r.client.queue_stats(queue).leased == 0)
        assert sorted(seen) == [n for n in range(40) if n != 7]  # each handled once
        assert r.client.get(queue, 10) == []


def test_inbox_skips_processed_ids_in_the_apps_database(
    url: str, tmp_path: Path, uniq: str
) -> None:
    need(url, "logs")
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, total INTEGER)")
        conn.execute("INSERT INTO totals VALUES (1, 0)")
    inbox = Inbox(lambda: sqlite3.connect(db, timeout=30))
    app = App("ledger")
    calls: list[int] = []

    @app.handler(topic=f"payments-{uniq}", inbox=inbox, policy=FAST)
    def handle(payload: dict[str, int], ctx: HandlerContext) -> None:
        calls.append(payload["amount"])
        ctx.connection.execute(
            "UPDATE totals SET total = total + ? WHERE id=1", (payload["amount"],)
        )
        if payload["amount"] == 5 and calls.count(5) == 1:
            raise ConnectionError("after the write: rolled back with the inbox row")

    def prepare(client: Client) -> None:
        client.create_topic(f"payments-{uniq}")

    def total() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT total FROM totals").fetchone()[0])

    with running(app, url, prepare) as r:
        for amount in (1, 5, 10):
            r.client.produce(f"payments-{uniq}", b'{"amount": %d}' % amount)
        r.wait_until(lambda: total() == 16)
        # The same event published twice (an at-least-once publisher): one effect.
        for _ in range(2):
            r.client.produce(
                f"payments-{uniq}", b'{"amount": 100}', headers={"idempotency-key": "pay-1"}
            )
        r.client.produce(f"payments-{uniq}", b'{"amount": 1000}')
        r.wait_until(lambda: total() == 1116)
    assert calls.count(5) == 2 and calls.count(100) == 1
    if url != "memory://":
        # Redeliver everything, as after a crash before the offsets were
        # committed: every id is in the inbox, nothing is applied again.
        with Client(url) as client:
            client.reset_offsets("ledger.handle", f"payments-{uniq}", "beginning")
        with running(app, url) as r:
            r.wait_until(lambda: r.runner.loops["handle"].handled == 6)
        assert total() == 1116 and len(calls) == 6
    assert inbox.purge(older_than_s=-1) == 5  # retention removes old ids


def test_inbox_in_a_postgresql_application_database() -> None:
    """The inbox speaks psycopg too: the application's state, the inbox and
    here the engine itself all live in one PostgreSQL database."""
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"rtapp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'CREATE TABLE "{schema}".totals (id INT PRIMARY KEY, total INT)')
        admin.execute(f'INSERT INTO "{schema}".totals VALUES (1, 0)')

    def connect() -> Any:
        return psycopg.connect(PG, options=f"-c search_path={schema}")

    inbox = Inbox(connect)
    app = App("pgledger")

    @app.handler(topic="payments", inbox=inbox)
    def handle(payload: dict[str, int], ctx: HandlerContext) -> None:
        ctx.connection.execute(
            "UPDATE totals SET total = total + %s WHERE id=1", (payload["amount"],)
        )

    def total() -> int:
        with connect() as conn:
            return int(conn.execute("SELECT total FROM totals").fetchone()[0])

    url = f"{PG}?schema={schema}"
    try:
        with running(app, url, lambda c: c.create_topic("payments")) as r:
            for _ in range(3):
                r.client.produce("payments", b'{"amount": 2}', headers={"idempotency-key": "p-1"})
            r.client.produce("payments", b'{"amount": 40}')
            r.wait_until(lambda: r.runner.loops["handle"].handled == 4)
        assert total() == 42
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
