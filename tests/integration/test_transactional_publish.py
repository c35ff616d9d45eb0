"""Appending in the caller's own transaction (O1 without an outbox) and
commit-order offsets under long transactions (L2), on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client, RecordMetadata, UnsupportedFeature
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


class Db:
    """The engine URL plus a way to open the caller's own connection."""

    def __init__(self, url: str, connect: Callable[[], Any], begin: str) -> None:
        self.url, self.connect, self.begin = url, connect, begin


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "tx.db"
        yield Db(
            f"sqlite:///{path}",
            lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False),
            "BEGIN IMMEDIATE",
        )
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg  # a test dependency (the dev extra): never skipped

    schema = f"tx_{uuid.uuid4().hex[:10]}"

    def connect() -> Any:
        conn = psycopg.connect(PG, autocommit=True)
        conn.execute(f'SET search_path TO "{schema}"')
        return conn

    yield Db(f"{PG}?schema={schema}", connect, "BEGIN")
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a failed test may leave a lock behind
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _values(client: Client, topic: str) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for r in client.engine.log.read(topic, 0, 0, 1000)]


def test_records_exist_iff_the_callers_transaction_commits(db: Db) -> None:
    """O1: rolled back → nothing stored, offsets reused; committed → stored."""
    client = Client(db.url)
    client.create_topic("tx-events")
    producer = client.producer()
    conn = db.connect()
    conn.execute(db.begin)
    producer.send_batch("tx-events", [b"lost"], connection=conn)
    conn.execute("ROLLBACK")
    assert _values(client, "tx-events") == []
    conn.execute(db.begin)
    meta = producer.send_batch("tx-events", [b"a", b"b"], connection=conn)
    assert _values(client, "tx-events") == []  # not visible before commit
    conn.execute("COMMIT")
    assert [m.offset for m in meta] == [0, 1]
    assert _values(client, "tx-events") == [(0, b"a"), (1, b"b")]
    conn.close()
    client.close()


def test_no_commit_order_gap_behind_a_long_transaction(db: Db) -> None:
    """L2: while a caller's transaction holds offsets 0..2 uncommitted, a
    concurrent producer waits; readers never see offset 3 before 0..2."""
    client = Client(db.url)
    client.create_topic("tx-order")
    conn = db.connect()
    conn.execute(db.begin)
    client.producer().send_batch("tx-order", [b"t1"] * 3, connection=conn)
    done: list[RecordMetadata] = []
    other = Client(db.url)
    worker = threading.Thread(target=lambda: done.append(other.produce("tx-order", b"t2")))
    worker.start()
    worker.join(timeout=0.5)
    assert not done, "the second producer must wait for the open transaction"
    assert _values(client, "tx-order") == []  # nothing visible: no gap to skip
    conn.execute("COMMIT")
    worker.join(timeout=10)
    assert done and done[0].offset == 3
    assert [o for o, _ in _values(client, "tx-order")] == [0, 1, 2, 3]
    conn.close()
    other.close()
    client.close()


def test_memory_engine_refuses_transactional_publish() -> None:
    """Features: the memory engine declares transactional publish unsupported."""
    client = Client("memory://")
    client.create_topic("tx-mem")
    assert not client.features.supports("transactional_publish")
    with pytest.raises(UnsupportedFeature):
        client.producer().send_batch("tx-mem", [b"x"], connection=object())
    client.close()


def test_queue_messages_exist_iff_the_callers_transaction_commits(db: Db) -> None:
    """O1 for queues: publish in the caller's transaction; rollback leaves
    nothing, commit makes the messages claimable."""
    client = Client(db.url)
    client.declare_queue("tx-q")
    conn = db.connect()
    conn.execute(db.begin)
    client.publish("tx-q", b"lost", connection=conn)
    conn.execute("ROLLBACK")
    assert client.queue_stats("tx-q").ready == 0
    conn.execute(db.begin)
    ids = client.publish_batch("tx-q", [b"a", b"b"], connection=conn)
    # Only read while the caller holds the transaction: on SQLite a claim
    # (a write) would wait for the caller's write lock.
    assert client.queue_stats("tx-q").ready == 0
    conn.execute("COMMIT")
    assert [(d.id, d.body) for d in client.get("tx-q", 5)] == list(
        zip(ids, [b"a", b"b"], strict=True)
    )
    conn.close()
    client.close()
