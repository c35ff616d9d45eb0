"""Handlers with ``transaction=`` (R5 without an inbox): the handler's
writes in the engine's own database and its message's offset commit or
ack share one transaction. In-process, on SQLite and PostgreSQL; the
SIGKILL test is tests/faults/test_runtime_transaction_crash.py."""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client, ConfigurationError, GroupConfig, UnsupportedFeature
from tidings.runtime import App, HandlerContext, Inbox, Retry, RetryPolicy
from tidings.runtime.testing import running
from tidings.testing import expire_sessions
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"
FAST = RetryPolicy(immediate=1, delayed=1, backoff=0.01, backoff_max=0.02)
FAST_GROUP = GroupConfig(session_timeout_s=1.0, heartbeat_interval_s=0.1)


class Db:
    def __init__(self, url: str, connect: Callable[[], Any], mark: str) -> None:
        self.url, self.connect, self.mark = url, connect, mark

    def rows(self) -> list[str]:
        conn = self.connect()
        try:
            return sorted(r[0] for r in conn.execute("SELECT what FROM effects").fetchall())
        finally:
            conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "bus.db"
        Client(f"sqlite:///{path}").close()  # the engine's file first
        yield _with_table(
            Db(
                f"sqlite:///{path}",
                lambda: sqlite3.connect(path, timeout=30, check_same_thread=False),
                "?",
            )
        )
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"rttx_{uuid.uuid4().hex[:10]}"
    Client(f"{PG}?schema={schema}").close()
    yield _with_table(
        Db(
            f"{PG}?schema={schema}",
            lambda: psycopg.connect(PG, options=f"-c search_path={schema}"),
            "%s",
        )
    )
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _with_table(db: Db) -> Db:
    conn = db.connect()
    conn.execute("CREATE TABLE effects (what TEXT NOT NULL)")
    conn.commit()
    conn.close()
    return db


def test_a_failed_attempt_is_rolled_back_with_its_commit(db: Db) -> None:
    """The first attempt at record 3 writes, then raises: its write is rolled
    back, the retry's stays; every record's effect is there once and the
    group's offset is committed past all of them."""
    app = App("txtopic")
    calls: Counter[str] = Counter()

    @app.handler(topic="pay", transaction=db.connect, policy=FAST)
    def on_pay(payload: bytes, ctx: HandlerContext) -> None:
        what = payload.decode()
        ctx.connection.execute(f"INSERT INTO effects VALUES ({db.mark})", (what,))
        calls[what] += 1
        if what == "3" and calls[what] == 1:
            raise RuntimeError("downstream hiccup")

    def prepare(client: Client) -> None:
        client.create_topic("pay")
        with client.producer() as producer:
            producer.send_batch("pay", [b"%d" % i for i in range(6)])

    with running(app, db.url, prepare) as r:
        r.wait_until(lambda: sum(calls.values()) == 7)
        r.wait_until(
            lambda: r.client.engine.groups.committed("txtopic.on_pay").get(_tp("pay")) == 6
        )
    assert calls["3"] == 2
    assert db.rows() == [str(i) for i in range(6)]


def test_a_queue_handler_acks_in_its_transaction(db: Db) -> None:
    """A Retry rolls the write back and the message comes again; a success
    acks it with the write: each effect once, the queue empty."""
    app = App("txqueue")
    calls: Counter[str] = Counter()

    @app.handler(queue="jobs", transaction=db.connect, policy=FAST)
    def on_job(payload: bytes, ctx: HandlerContext) -> Retry | None:
        what = payload.decode()
        ctx.connection.execute(f"INSERT INTO effects VALUES ({db.mark})", (what,))
        calls[what] += 1
        return Retry(0.01) if what == "b" and calls[what] == 1 else None

    def prepare(client: Client) -> None:
        client.declare_queue("jobs")
        client.publish_batch("jobs", [b"a", b"b", b"c"])

    with running(app, db.url, prepare) as r:
        r.wait_until(lambda: sum(calls.values()) == 4)
        r.wait_until(lambda: _empty(r.client, "jobs"))
    assert db.rows() == ["a", "b", "c"]


def test_a_fenced_commit_rolls_the_handler_back_and_the_record_comes_again(
    tmp_path: Path,
) -> None:
    """L4 in the handler's transaction (PostgreSQL: the group row is only
    locked at the commit, so the test can expire the member meanwhile): the
    write is rolled back, the member rejoins and handles the record again —
    once in the table."""
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    schema = f"rttx_{uuid.uuid4().hex[:10]}"
    url = f"{PG}?schema={schema}"
    import psycopg

    Client(url).close()
    db = _with_table(Db(url, lambda: psycopg.connect(PG, options=f"-c search_path={schema}"), "%s"))
    app = App("txfence")
    calls: Counter[str] = Counter()
    engine: list[Client] = []

    @app.handler(topic="pay", transaction=db.connect, group_config=FAST_GROUP)
    def on_pay(payload: bytes, ctx: HandlerContext) -> None:
        what = payload.decode()
        ctx.connection.execute(f"INSERT INTO effects VALUES ({db.mark})", (what,))
        calls[what] += 1
        if what == "1" and calls[what] == 1:  # as if this process had stalled
            assert expire_sessions(engine[0], "txfence.on_pay")

    def prepare(client: Client) -> None:
        engine.append(client)
        client.create_topic("pay")
        with client.producer() as producer:
            producer.send_batch("pay", [b"0", b"1", b"2"])

    try:
        with running(app, url, prepare) as r:
            r.wait_until(
                lambda: r.client.engine.groups.committed("txfence.on_pay").get(_tp("pay")) == 3
            )
        # Rolled back; the member rejoined at once and handled it again.
        assert calls["1"] == 2, calls
        assert db.rows() == ["0", "1", "2"], calls
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_memory_engine_refuses_transaction_handlers() -> None:
    app = App("txmem")

    @app.handler(topic="pay", transaction=lambda: None)
    def on_pay(payload: bytes) -> None: ...

    with pytest.raises(UnsupportedFeature), running(app, prepare=_topic("pay")):
        pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transaction": "sqlite:///x.db"}, "function returning"),
        ({"transaction": lambda: None, "inbox": Inbox(lambda: None)}, "not both"),
        ({"transaction": lambda: None, "ordering": "key"}, 'ordering="partition"'),
    ],
)
def test_bad_transaction_options_are_refused_at_definition(
    options: dict[str, Any], message: str
) -> None:
    app = App("txbad")
    with pytest.raises(ConfigurationError, match=message):
        app.handler(topic="pay", **options)


def test_an_autocommit_connection_is_refused_at_start(db: Db) -> None:
    """Autocommit would store the handler's writes apart from the commit:
    the runner refuses to start (nothing is handled, nothing parked)."""
    if db.mark == "?":
        connect: Callable[[], Any] = lambda: sqlite3.connect(":memory:", autocommit=True)  # noqa: E731
        if sys.version_info < (3, 12):
            pytest.skip("sqlite3 autocommit= needs Python 3.12")
    else:
        import psycopg

        connect = lambda: psycopg.connect(PG, autocommit=True)  # noqa: E731
    app = App("txauto")

    @app.handler(topic="pay", transaction=connect)
    def on_pay(payload: bytes) -> None: ...

    with pytest.raises(ConfigurationError, match="autocommit"), running(app, db.url, _topic("pay")):
        pass


def _tp(topic: str) -> Any:
    from tidings import TopicPartition

    return TopicPartition(topic, 0)


def _empty(client: Client, queue: str) -> bool:
    s = client.queue_stats(queue)
    return s.ready + s.leased + s.delayed == 0


def _topic(name: str) -> Callable[[Client], None]:
    return lambda client: client.create_topic(name)


def test_async_and_batch_handlers_share_the_transaction(db: Db) -> None:
    """An async handler (per record) and a batch handler (per fetch): the
    writes and the commit / ack in one transaction each time."""
    app = App("txforms")
    calls: Counter[str] = Counter()

    @app.handler(topic="pay", transaction=db.connect)
    async def on_pay(payload: bytes, ctx: HandlerContext) -> None:
        ctx.connection.execute(f"INSERT INTO effects VALUES ({db.mark})", ("t" + payload.decode(),))
        calls["topic"] += 1

    @app.handler(queue="jobs", transaction=db.connect, batch=True)
    def on_jobs(payloads: list[bytes], ctx: HandlerContext) -> None:
        for p in payloads:
            ctx.connection.execute(f"INSERT INTO effects VALUES ({db.mark})", ("q" + p.decode(),))
        calls["queue"] += len(payloads)

    def prepare(client: Client) -> None:
        client.create_topic("pay")
        client.declare_queue("jobs")
        with client.producer() as producer:
            producer.send_batch("pay", [b"1", b"2"])
        client.publish_batch("jobs", [b"1", b"2", b"3"])

    with running(app, db.url, prepare) as r:
        r.wait_until(lambda: calls["topic"] == 2 and calls["queue"] == 3)
        r.wait_until(lambda: _empty(r.client, "jobs"))
        r.wait_until(
            lambda: r.client.engine.groups.committed("txforms.on_pay").get(_tp("pay")) == 2
        )
    assert db.rows() == ["q1", "q2", "q3", "t1", "t2"]


def test_async_clients_commit_and_ack_in_your_transaction(db: Db) -> None:
    """The async twins: AsyncConsumer.commit and AsyncClient.ack with
    ``connection``; rolled back, nothing is stored."""
    import asyncio

    from tidings import AsyncClient, TopicPartition

    with Client(db.url) as setup:
        setup.create_topic("pay")
        setup.produce("pay", b"1")
        setup.declare_queue("jobs", lease="30s")
        setup.publish("jobs", b"j")
    conn = db.connect()
    tp = TopicPartition("pay", 0)

    async def main() -> None:
        async with AsyncClient(db.url) as client:
            consumer = await client.consumer(["pay"], "g", start="beginning", auto_commit=False)
            async with consumer:
                # On SQLite an open write transaction holds the database's
                # write lock: lease before it begins, not inside it.
                assert await consumer.poll(5)
                (job,) = await client.get("jobs")
                await consumer.commit({tp: 1}, connection=conn)
                await client.ack(job, connection=conn)
                conn.rollback()
                with Client(db.url) as check:
                    assert check.engine.groups.committed("g") == {}
                    assert check.queue_stats("jobs").leased == 1
                await consumer.commit({tp: 1}, connection=conn)
                await client.ack(job, connection=conn)
                conn.commit()

    try:
        asyncio.run(main())
    finally:
        conn.close()
    with Client(db.url) as check:
        assert check.engine.groups.committed("g") == {tp: 1}
        s = check.queue_stats("jobs")
        assert s.ready + s.leased + s.delayed == 0
