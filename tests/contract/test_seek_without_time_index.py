"""Seek by time (L5) without a time index (schema version 5): the binary
search over the offset index gives what the old ``batches_by_time`` query
gave, before and after retention and compaction; and a file or schema made
by version 4 (which had that index) is upgraded in place, its records and
time seeks intact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.engines.sql import database, migrations, postgres, spread

# What offset_for_time ran before version 5, on the index it dropped.
_OLD_QUERY = (
    "SELECT base_offset FROM batches WHERE topic_id=? AND partition=? AND ts>=? "
    "ORDER BY ts, last_offset LIMIT 1"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/seek.db?maintenance_interval=0"
    else:
        yield request.getfixturevalue("pg_schema_url")


def _fill(client: Client, topic: str, batches: int) -> list[tuple[int, int]]:
    """``batches`` keyed batches of 1-3 records, a few ms apart; returns
    each batch's (base offset, timestamp)."""
    out = []
    with client.producer() as producer:
        for i in range(batches):
            n = 1 + i % 3
            metas = producer.send_batch(
                topic, [b"v%d" % i] * n, keys=[b"k%d" % (i % 4)] * n, partition=0
            )
            out.append((metas[0].offset, metas[0].timestamp))
            time.sleep(0.002)
    return out


def _old_answer(client: Client, topic: str, ts: int) -> int:
    """The pre-version-5 query, run on the same data (no index needed)."""
    log: Any = client.engine.log  # type: ignore[attr-defined]
    tid = log._topic(topic)[0]
    conn = log._reader()
    row = conn.execute(_OLD_QUERY, (tid, 0, ts)).fetchone()
    if row is not None:
        return int(row[0])
    return int(
        conn.execute(
            "SELECT next_offset FROM partitions WHERE topic_id=? AND partition=0", (tid,)
        ).fetchone()[0]
    )


def _probe_times(stored: list[tuple[int, int]]) -> list[int]:
    stamps = sorted({ts for _, ts in stored})
    return [stamps[0] - 1_000, *stamps, *(t + 1 for t in stamps), stamps[-1] + 1_000]


def _assert_same(client: Client, topic: str, stored: list[tuple[int, int]]) -> None:
    log = client.engine.log  # type: ignore[attr-defined]
    for ts in _probe_times(stored):
        assert log.offset_for_time(topic, 0, ts) == _old_answer(client, topic, ts), ts


def test_time_seek_matches_the_indexed_query(url: str) -> None:
    with Client(url) as client:
        client.create_topic("seek", partitions=1, compact=True)
        client.create_topic("empty", partitions=1)
        assert client.engine.log.offset_for_time("empty", 0, 0) == 0  # type: ignore[attr-defined]
        stored = _fill(client, "seek", 40)
        assert client.engine.log.schema_version() == migrations.SCHEMA_VERSION  # type: ignore[attr-defined]
        _assert_same(client, "seek", stored)
        # Compaction leaves gaps (whole batches go, others turn sparse).
        log = client.engine.log  # type: ignore[attr-defined]
        assert log.compact("seek", stored[-1][1] + 10) > 0
        _assert_same(client, "seek", stored)
        # Retention removes a prefix (as retain_partition does): seeks
        # before it land on what is left.
        cut = stored[10][0]

        def retain(conn: Any) -> None:
            conn.execute("DELETE FROM batches WHERE base_offset < ?", (cut,))
            conn.execute("UPDATE partitions SET first_offset=?", (cut,))

        client.engine._writer.run(retain)  # type: ignore[attr-defined]
        _assert_same(client, "seek", stored)
        first = log._reader().execute("SELECT min(base_offset) FROM batches").fetchone()[0]
        assert log.offset_for_time("seek", 0, 0) == first >= cut


def _at_version_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this tidings create version-4 schemas (the time index kept)."""
    for module in (migrations, database, postgres):
        monkeypatch.setattr(module, "SCHEMA_VERSION", 4)
    # Version 4 has no spread rows (version 6): the log keeps no heads and
    # appends go to batches, as on PostgreSQL.
    monkeypatch.setattr(spread, "Heads", lambda: None)


def _has_time_index(client: Client) -> bool:
    log: Any = client.engine.log  # type: ignore[attr-defined]
    if client.url.startswith("sqlite:"):
        sql = "SELECT 1 FROM sqlite_master WHERE name='batches_by_time'"
    else:
        sql = (
            "SELECT 1 FROM pg_indexes "
            "WHERE schemaname=current_schema() AND indexname='batches_by_time'"
        )
    return log._reader().execute(sql).fetchone() is not None


def test_version_4_database_is_upgraded_with_its_records(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        _at_version_4(patch)
        with Client(url) as old:
            assert old.engine.log.schema_version() == 4 and _has_time_index(old)  # type: ignore[attr-defined]
            old.create_topic("kept", partitions=1)
            stored = _fill(old, "kept", 12)
    with Client(url) as client:
        assert client.engine.log.schema_version() == migrations.SCHEMA_VERSION  # type: ignore[attr-defined]
        assert not _has_time_index(client)
        _assert_same(client, "kept", stored)
        more = _fill(client, "kept", 3)
        total = more[-1][0] + 3
        got: list[int] = []
        with client.consumer("kept", group="g", start="beginning") as consumer:
            while len(got) < total:
                batch = consumer.poll(timeout=5, max_records=1_000)
                assert batch, got
                got += [r.offset for r in batch]
        assert got == list(range(total))
        when = more[0][1]
        assert client.engine.log.offset_for_time("kept", 0, when) == more[0][0]  # type: ignore[attr-defined]
