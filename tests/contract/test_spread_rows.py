"""SQLite spread rows (``engines/sql/spread.py``): a call spread over many
partitions is stored as one row and merged into per-partition batches
later. Whoever appends, reads, rolls back or crashes, every acknowledged
record is read back once, at the offset it was acknowledged with."""

from __future__ import annotations

import itertools
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidings import Client, CorruptDataError
from tidings.engines.sql import spread
from tidings.message import Record
from tidings.partitioner import crc32_partition, keys_in_turn

PARTITIONS = 64


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bus.db'}?maintenance_interval=0"


def _read_partition(client: Client, topic: str, partition: int) -> list[Record]:
    """Everything the partition holds, read as consumers read (L5)."""
    out: list[Record] = []
    while True:
        got = client.engine.log.read(topic, partition, len(out), 100)
        if not got:
            return out
        out += got


def _pending(client: Client) -> int:
    conn = client.engine._reader()  # type: ignore[attr-defined]
    return int(conn.execute("SELECT count(*) FROM spread_batches").fetchone()[0])


def test_two_clients_interleave_spread_single_appends_and_reads(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clients (each with its own cached heads) append spread calls,
    calls over a few partitions and single records to one file in random
    order, with reads merging in
    between and producer merges every 5 rows: every partition holds exactly
    what was acknowledged, densely, in order."""
    monkeypatch.setattr(spread, "MERGE_ROWS", 5)
    rng = random.Random(7)
    model: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    keys = keys_in_turn(2 * PARTITIONS, PARTITIONS)
    with Client(url) as a, Client(url) as b:
        a.create_topic("t", partitions=PARTITIONS)
        producers = [a.producer(), b.producer()]
        for step in range(200):
            client, producer = rng.choice([(a, producers[0]), (b, producers[1])])
            kind = rng.random()
            if kind < 0.5:
                n = rng.randrange(PARTITIONS, len(keys))
                values = [b"s%d-%d" % (step, i) for i in range(n)]
                for meta, value in zip(producer.send_batch("t", values, keys=keys[:n]), values):
                    assert meta.offset == len(model[meta.partition])
                    model[meta.partition].append(value)
            elif kind < 0.65:  # a few partitions, many records: batch rows unless pending
                few = [k for k in keys[:3] for _ in range(20)]
                values = [b"f%d-%d" % (step, i) for i in range(len(few))]
                for meta, value in zip(producer.send_batch("t", values, keys=few), values):
                    assert meta.offset == len(model[meta.partition])
                    model[meta.partition].append(value)
            elif kind < 0.85:
                p = rng.randrange(PARTITIONS)
                value = b"one%d" % step
                meta = producer.send_batch("t", [value], partition=p)[0]
                assert meta.offset == len(model[p])
                model[p].append(value)
            else:
                p = rng.randrange(PARTITIONS)
                got = _read_partition(client, "t", p)
                assert [r.value for r in got] == model[p]
        assert [i.next_offset for i in a.partitions("t")] == [len(model[p]) for p in model]
        for p in range(PARTITIONS):
            got = _read_partition(b, "t", p)
            assert [r.offset for r in got] == list(range(len(model[p])))
            assert [r.value for r in got] == model[p]
            assert all(x.timestamp <= y.timestamp for x, y in itertools.pairwise(got))
        assert _pending(a) == 0


def test_rolled_back_spread_append_leaves_no_trace(tmp_path: Path) -> None:
    """A spread append in the caller's transaction that rolls back leaves
    the process's cached head pointing at a row that never was: the next
    append must notice and take the offsets from the database."""
    path = tmp_path / "bus.db"
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(f"sqlite:///{path}?maintenance_interval=0") as client:
        client.create_topic("t", partitions=PARTITIONS)
        producer = client.producer()
        producer.send_batch("t", [b"first"] * len(keys), keys=keys)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        rolled = producer.send_batch("t", [b"gone"] * len(keys), keys=keys, connection=conn)
        assert {m.offset for m in rolled} == {1}
        conn.execute("ROLLBACK")
        conn.close()
        again = producer.send_batch("t", [b"second"] * len(keys), keys=keys)
        assert {m.offset for m in again} == {1}
        for p in (0, PARTITIONS - 1):
            assert [r.value for r in _read_partition(client, "t", p)] == [b"first", b"second"]


def _damage(client: Client, column: str, row: int = 0) -> None:
    """Flip the last byte of one spread row's ``column``."""

    def flip(conn: sqlite3.Connection) -> None:
        row_id, blob = conn.execute(
            f"SELECT id, {column} FROM spread_batches ORDER BY id LIMIT 1 OFFSET ?", (row,)
        ).fetchone()
        damaged = bytearray(blob)
        damaged[-1] ^= 0xFF
        conn.execute(f"UPDATE spread_batches SET {column}=? WHERE id=?", (bytes(damaged), row_id))

    client.engine._writer.run(flip)  # type: ignore[attr-defined]


def test_damaged_spread_row_is_a_damaged_batch_the_rest_stays_readable(url: str) -> None:
    """A spread row whose payload fails its checksum is merged as one
    damaged batch per partition, at its offsets: a read reports them and
    says where to seek past, as for any damaged batch, and the records of
    the spread rows before and after it are intact."""
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
        producer = client.producer()
        for i in range(3):
            producer.send_batch("t", [b"v%d" % i] * len(keys), keys=keys)
        _damage(client, "payload", row=1)
        log = client.engine.log
        assert [r.value for r in log.read("t", 0, 0, 10)] == [b"v0"]  # the good part first
        damaged = r"offsets 1\.\.1 failed their checksum.*offset 2"
        with pytest.raises(CorruptDataError, match=damaged):
            log.read("t", 0, 1, 10)
        assert [r.value for r in log.read("t", 7, 2, 10)] == [b"v2"]
        assert [i.next_offset for i in client.partitions("t")] == [3] * PARTITIONS
        assert _pending(client) == 0


def test_time_seek_and_retention_pass_a_damaged_merged_batch(url: str) -> None:
    """A damaged spread row's batches (no payload left to read record
    times from) are one batch to a time seek, which lands on their first
    offset (a read there reports the damage), and to time retention, which
    keeps them while their time is within the limit."""
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS, retention="1h")
        producer = client.producer()
        stamps = [
            producer.send_batch("t", [b"v%d" % i] * len(keys), keys=keys)[0].timestamp
            for i in range(2)
        ]
        _damage(client, "payload", row=0)
        log = client.engine.log
        assert log.offset_for_time("t", 0, stamps[0]) == 0
        assert log.enforce_retention("t", stamps[0] + 1_000) == 0
        with pytest.raises(CorruptDataError, match=r"offsets 0\.\.0 failed their checksum"):
            log.read("t", 0, 0, 10)
        assert [r.value for r in log.read("t", 0, 1, 10)] == [b"v1"]


def test_damaged_spread_directory_is_reported_and_nothing_is_merged(url: str) -> None:
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
        client.producer().send_batch("t", [b"v"] * len(keys), keys=keys)
        _damage(client, "directory")
        with pytest.raises(CorruptDataError, match=r"spread row \d+'s directory failed"):
            client.engine.log.read("t", 0, 0, 10)
        conn = client.engine._reader()  # type: ignore[attr-defined]
        assert conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0
        assert _pending(client) == 1


def test_time_seek_lands_inside_a_merged_batch(url: str) -> None:
    """A merged batch spans several appends, each with its own time: a
    seek by time finds the first record at or after it, not the batch."""
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
        producer = client.producer()
        stamps = []
        for i in range(5):
            stamps.append(producer.send_batch("t", [b"%d" % i] * len(keys), keys=keys)[0].timestamp)
            time.sleep(0.003)
        got = _read_partition(client, "t", 3)  # merges: one batch of 5 records
        conn = client.engine._reader()  # type: ignore[attr-defined]
        assert conn.execute("SELECT count(*) FROM batches WHERE partition=3").fetchone()[0] == 1
        assert [r.timestamp for r in got] == stamps
        log = client.engine.log
        for ts in {*stamps, *(s + 1 for s in stamps), stamps[0] - 1, stamps[-1] + 1}:
            expected = next((r.offset for r in got if r.timestamp >= ts), len(got))
            assert log.offset_for_time("t", 3, ts) == expected, ts


_CRASHING_PRODUCER = """
import os, sys
from tidings import Client
from tidings.engines.sql import spread
spread.MERGE_ROWS = 10**9  # everything stays in spread rows
keys = [k.encode() for k in sys.argv[2].split(",")]
with Client(sys.argv[1]) as client:
    producer = client.producer()
    for i in range(20):
        metas = producer.send_batch("t", [b"c%d" % i] * len(keys), keys=keys)
        print(i, flush=True)
    os.kill(os.getpid(), 9)
"""


def test_spread_rows_survive_a_killed_producer(url: str) -> None:
    """A producer killed with SIGKILL after its spread appends were
    acknowledged, before any merge: a new process reads every record."""
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
    child = subprocess.run(
        [sys.executable, "-c", _CRASHING_PRODUCER, url, ",".join(k.decode() for k in keys)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    acked = len(child.stdout.split())
    assert acked == 20
    with Client(url) as client:
        assert _pending(client) == acked
        for p in (0, 17, PARTITIONS - 1):
            got = _read_partition(client, "t", p)
            assert [r.value for r in got] == [b"c%d" % i for i in range(acked)]
        assert _pending(client) == 0


def test_retention_trims_a_compacted_merged_batch_keeping_offsets(url: str) -> None:
    """A merged batch, then compacted (sparse offsets), then cut by time
    retention in its middle: what stays keeps its offsets, values and
    times, and the partition's first offset is the first record kept."""
    keys = keys_in_turn(PARTITIONS, PARTITIONS)
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS, compact=True, retention="1h")
        producer = client.producer()
        a, b = [k for k in (b"x%d" % i for i in range(10_000)) if crc32_partition(k, 64) == 5][:2]
        stamps = []
        for i in range(6):
            # Partition 5 gets key a in even calls, b in odd ones.
            ks = [k if j != 5 else (a if i % 2 == 0 else b) for j, k in enumerate(keys)]
            sent = producer.send_batch("t", [b"v%d" % i] * len(ks), keys=ks)
            stamps.append(sent[5].timestamp)
            time.sleep(0.003)
        log = client.engine.log
        before = _read_partition(client, "t", 5)
        assert [r.offset for r in before] == list(range(6))
        assert log.compact("t", stamps[-1]) > 0  # partition 5 keeps offsets 4 (a) and 5 (b)
        kept = _read_partition_from(client, "t", 5, 0)
        assert [(r.offset, r.value) for r in kept] == [(4, b"v4"), (5, b"v5")]
        # Retention at a cutoff between the two kept records' times.
        cutoff = stamps[5]
        removed = log.enforce_retention("t", cutoff + 3_600_000)
        assert removed >= 1
        left = _read_partition_from(client, "t", 5, 0)
        assert [(r.offset, r.value, r.timestamp) for r in left] == [(5, b"v5", stamps[5])]
        assert client.partitions("t")[5].first_offset == 5


def _read_partition_from(client: Client, topic: str, partition: int, offset: int) -> list[Record]:
    return client.engine.log.read(topic, partition, offset, 1_000)
