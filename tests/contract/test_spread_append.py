"""A ``send_batch`` spread over many partitions appends every partition's
records with a few statements (not two per partition), and each partition
gets its records at consecutive offsets, in order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings import Client
from tidings.engines.sql import postgres
from tidings.message import TopicPartition
from tidings.partitioner import keys_in_turn

PARTITIONS = 1_000


def _check_spread(
    client: Client,
    topic: str,
    partitions: int,
    on_appended: Callable[[], object] | None = None,
) -> None:
    keys = keys_in_turn(2 * partitions, partitions)
    producer = client.producer()
    first = producer.send_batch(topic, [b"a%d" % i for i in range(len(keys))], keys=keys)
    second = producer.send_batch(topic, [b"b%d" % i for i in range(len(keys))], keys=keys)
    if on_appended is not None:
        on_appended()  # before any read
    assert {(m.partition, m.offset) for m in first} == {
        (p, o) for p in range(partitions) for o in (0, 1)
    }
    assert [m.offset for m in second][:partitions] == [2] * partitions
    for p in (0, partitions // 2, partitions - 1):
        with client.consumer(topic, assign=[TopicPartition(topic, p)], start="beginning") as c:
            got = c.poll(timeout=5, max_records=10)
        assert [r.offset for r in got] == [0, 1, 2, 3]
        a, b = b"a%d" % p, b"a%d" % (p + partitions)
        assert [r.value for r in got] == [a, b, b"b" + a[1:], b"b" + b[1:]]
    assert sum(i.size for i in client.partitions(topic)) > 0


def test_sqlite_spread_batch_is_one_row_merged_when_read(tmp_path: Path) -> None:
    """On SQLite a call spread over many partitions is one spread row (no
    partition row, no batch row touched); the first read merges both calls
    into one batch per partition."""
    with Client(f"sqlite:///{tmp_path}/s.db?maintenance_interval=0") as client:
        client.create_topic("spread", partitions=PARTITIONS)
        statements: Counter[str] = Counter()
        conn = client.engine._writer._session.conn  # type: ignore[attr-defined]
        conn.set_trace_callback(lambda sql: statements.update([" ".join(sql.split()[:3])]))
        snapshots: list[Counter[str]] = []
        _check_spread(
            client, "spread", PARTITIONS, on_appended=lambda: snapshots.append(statements.copy())
        )
        conn.set_trace_callback(None)
        rows = conn.execute("SELECT count(*), min(count), max(count) FROM batches").fetchone()
        pending = conn.execute("SELECT count(*) FROM spread_batches").fetchone()[0]
    (appended,) = snapshots
    assert appended["INSERT INTO spread_batches(topic_id,"] == 2
    assert appended["UPDATE partitions SET"] == 0 and appended["INSERT INTO batches(topic_id,"] == 0
    assert statements["DELETE FROM spread_batches"] == 1  # one merge, by the first read
    assert rows == (PARTITIONS, 4, 4) and pending == 0


def test_postgres_spread_batch_costs_a_few_round_trips(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(pg_schema_url) as client:
        client.create_topic("spread", partitions=PARTITIONS)
        calls: Counter[str] = Counter()
        execute, copy_columns = postgres.PgConnection.execute, postgres.PgConnection.copy_columns

        def counted_execute(self: postgres.PgConnection, sql: str, params=()):  # type: ignore[no-untyped-def]
            calls[" ".join(sql.split()[:3])] += 1
            return execute(self, sql, params)

        def counted_copy(self: postgres.PgConnection, table, names, columns):  # type: ignore[no-untyped-def]
            calls["COPY " + table] += 1
            return copy_columns(self, table, names, columns)

        monkeypatch.setattr(postgres.PgConnection, "execute", counted_execute)
        monkeypatch.setattr(postgres.PgConnection, "copy_columns", counted_copy)
        _check_spread(client, "spread", PARTITIONS)
    assert calls["UPDATE partitions SET"] <= 4
    assert calls["INSERT INTO batches(topic_id,"] == 0 and calls["COPY batches"] == 2
