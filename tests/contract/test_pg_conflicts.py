"""PostgreSQL transactions that meet other transactions (issue 8): rows are
locked in one order, a deadlock loser runs again without failing its group
commit, and driver errors are translated by SQLSTATE."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from tidings import (
    Client,
    EngineConflict,
    EngineProtocolError,
    EngineStorageFull,
    EngineTimeout,
    EngineUnavailable,
)
from tidings.ports.log import RecordColumns


def test_errors_are_translated_by_sqlstate() -> None:
    """Each OperationalError says what happened and whether to retry."""
    pytest.importorskip("psycopg")
    import psycopg
    import psycopg.errors as e

    from tidings.engines.sql.postgres import translate

    cases: list[tuple[BaseException, type[Exception], bool]] = [
        (e.DeadlockDetected("deadlock detected"), EngineConflict, True),
        (e.SerializationFailure("could not serialize"), EngineConflict, True),
        (e.QueryCanceled("canceling statement due to statement timeout"), EngineTimeout, True),
        (e.LockNotAvailable("could not obtain lock"), EngineTimeout, True),
        (e.DiskFull("could not extend file"), EngineStorageFull, False),
        (e.AdminShutdown("terminating connection"), EngineUnavailable, True),
        (e.TooManyConnections("too many clients"), EngineUnavailable, True),
        (e.ReadOnlySqlTransaction("read-only transaction"), EngineUnavailable, True),
        (psycopg.OperationalError("server closed the connection"), EngineUnavailable, True),
        (e.UniqueViolation("duplicate key"), EngineProtocolError, False),
    ]
    for exc, kind, retriable in cases:
        err = translate(exc)
        assert type(err) is kind, (exc, err)
        assert err.retriable is retriable, (exc, err)  # type: ignore[attr-defined]
        assert err.__cause__ is exc
        assert "unavailable" not in str(err) or kind is EngineUnavailable, err


def _cols(n: int, tag: bytes) -> RecordColumns:
    return RecordColumns([tag + b"%d" % i for i in range(n)], None, None)


def _appender(
    client: Client, topic: str, i: int, rounds: int, barrier: threading.Barrier, errors: list[Any]
) -> None:
    order = [0, 1] if i == 0 else [1, 0]
    for r in range(rounds):
        barrier.wait()
        try:
            client.engine.log.append(topic, {p: _cols(3, b"%d-%d-%d-" % (i, r, p)) for p in order})
        except Exception as exc:  # reported by the test
            errors.append(exc)


def _publisher(
    client: Client, i: int, rounds: int, barrier: threading.Barrier, errors: list[Any]
) -> None:
    order = ["qa", "qb"] if i == 0 else ["qb", "qa"]
    for r in range(rounds):
        barrier.wait()
        try:
            for q in order:  # keyed: the group-commit path, locking the queue row
                client.publish(q, b"m", idempotency_key=f"{i}-{r}-{q}")
        except Exception as exc:  # reported by the test
            errors.append(exc)


@pytest.mark.timeout(120)
def test_appends_in_opposite_partition_orders_do_not_deadlock(
    pg_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two clients (two connections, as two processes) append to the same
    two partitions at once, naming them in opposite orders, and publish to
    two queues in opposite orders from two threads each: every call
    succeeds, and no transaction had to be run again (rows are locked in
    one global order)."""
    caplog.set_level(logging.WARNING, logger="tidings.writer")
    topic = f"dl-{uuid.uuid4().hex[:6]}"
    clients = [Client(pg_schema_url), Client(pg_schema_url)]
    clients[0].create_topic(topic, partitions=2)
    for q in ("qa", "qb"):
        clients[0].declare_queue(q)
    rounds, errors = 60, list[Any]()
    barrier = threading.Barrier(4)
    threads = [
        threading.Thread(target=_appender, args=(clients[i], topic, i, rounds, barrier, errors))
        for i in (0, 1)
    ]
    threads += [
        threading.Thread(target=_publisher, args=(clients[i], i, rounds, barrier, errors))
        for i in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    try:
        assert not errors, errors[:3]
        assert clients[0].engine.log.describe_partitions(topic)[0].next_offset == 2 * rounds * 3
        retried = [r.getMessage() for r in caplog.records if r.name == "tidings.writer"]
        assert not retried, retried[:3]
    finally:
        for c in clients:
            c.close()


@pytest.mark.timeout(60)
def test_a_deadlocked_request_runs_again_and_its_group_commits(
    pg_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A request of a group commit deadlocks with another transaction and is
    chosen as the victim: it runs again in the next transaction and
    succeeds, and the other request of its group commit is unaffected."""
    import psycopg

    caplog.set_level(logging.WARNING, logger="tidings.writer")
    client = Client(pg_schema_url)
    topic = f"dl-{uuid.uuid4().hex[:6]}"
    client.create_topic(topic, partitions=2)
    client.declare_queue("other")
    engine: Any = client.engine
    writer = engine._writer
    tid = engine.log._topic(topic)[0]
    schema = pg_schema_url.rsplit("schema=", 1)[1]
    other = psycopg.connect(pg_schema_url.split("?", maxsplit=1)[0])
    other.execute(f'SET search_path TO "{schema}"')
    other.execute("SET deadlock_timeout = '20s'")  # the victim is the writer's transaction
    touch = "UPDATE partitions SET bytes = bytes WHERE topic_id = %s AND partition = %s"
    other.execute(touch, (tid, 0))  # holds partition 0
    gate, waiting = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def deadlocking(conn: Any) -> str:
        conn.execute(touch.replace("%s", "?"), (tid, 1))
        waiting.set()
        conn.execute(touch.replace("%s", "?"), (tid, 0))  # waits for `other`
        return "a"

    def call(name: str, fn: Any) -> None:
        try:
            results[name] = fn()
        except Exception as exc:  # asserted below
            results[name] = exc

    calls = {
        "blocker": lambda: writer.run(lambda conn: gate.wait(10)),
        "a": lambda: writer.run(deadlocking),
        "b": lambda: client.publish("other", b"b", idempotency_key="b"),
    }
    threads = {n: threading.Thread(target=call, args=(n, f)) for n, f in calls.items()}
    threads["blocker"].start()
    while not writer._leading:
        time.sleep(0.001)
    threads["a"].start()
    threads["b"].start()
    while len(writer._queue) < 2:  # both queued behind the blocker: one group commit
        time.sleep(0.001)
    gate.set()
    assert waiting.wait(10)
    time.sleep(0.2)  # the writer's transaction now waits for partition 0
    other.execute(touch, (tid, 1))  # ... and `other` for partition 1: a deadlock
    other.commit()
    for t in threads.values():
        t.join(timeout=30)
    other.close()
    assert results == {"blocker": True, "a": "a", "b": results["b"]}, results
    assert isinstance(results["b"], int)
    assert any("lost to a concurrent transaction" in r.getMessage() for r in caplog.records)
    assert [d.body for d in client.get("other", 10)] == [b"b"]
    client.close()
