"""Maintenance and dead-letter work at a million messages/records stays
bounded: memory flat, the write lock held briefly (SQLite engine).

Each operation runs over 1,000,000 stored messages or records while the
process's peak resident memory is watched (Linux: VmHWM, reset before the
operation; tracemalloc would slow it five times) and every write
transaction of the engine is timed from BEGIN IMMEDIATE to COMMIT (the time
other writers, in this process or another, wait at most for the lock
because of it).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tidings import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),  # about a minute each; more on a loaded machine
    pytest.mark.skipif(
        not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux /proc"
    ),
]
T = TypeVar("T")

N = 1_000_000
#: How much an operation may grow the process's peak memory, whatever the
#: backlog. Loading the backlog at once would take several hundred MB.
PEAK_BYTES = 48 << 20
#: The longest a write transaction of the operation may hold the lock. The
#: measured holds are a few to a few tens of milliseconds; the bound leaves
#: room for a loaded CI machine.
HOLD_S = 0.5


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


class Measured:
    """Peak memory growth and longest write-lock hold of one operation."""

    def __init__(self) -> None:
        self.peak = 0
        self.holds: list[float] = []

    @property
    def longest_hold(self) -> float:
        return max(self.holds, default=0.0)


@contextlib.contextmanager
def measured(client: Client) -> Iterator[Measured]:
    """Watch peak memory and time every write transaction of ``client``'s
    SQLite engine while the block runs."""
    session = client.engine._writer._session  # type: ignore[attr-defined]
    begin, commit, rollback = session.begin, session.commit, session.rollback
    out = Measured()
    started: list[float] = []

    def timed_begin(fsync: bool, locks: Any) -> None:
        begin(fsync, locks)
        started.append(time.perf_counter())

    def ended(end: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            end(*args)
            if started:
                out.holds.append(time.perf_counter() - started.pop())

        return run

    session.begin, session.commit, session.rollback = timed_begin, ended(commit), ended(rollback)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident size
    start = _status_kib("VmRSS")
    try:
        yield out
    finally:
        out.peak = (_status_kib("VmHWM") - start) * 1024
        session.begin, session.commit, session.rollback = begin, commit, rollback
    print(  # shown with -s: the numbers the report quotes
        f"peak growth {out.peak / 2**20:.1f} MiB, {len(out.holds)} write transactions, "
        f"longest {out.longest_hold * 1000:.1f} ms"
    )


def check(m: Measured) -> None:
    assert m.peak < PEAK_BYTES, f"peak {m.peak / 2**20:.1f} MiB"
    assert m.longest_hold < HOLD_S, f"write lock held {m.longest_hold:.3f}s"


def _fill_expired(path: Path, queue: str, n: int) -> None:
    """n expired TTL messages, written straight into the file (fast)."""
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        qid = conn.execute("SELECT id FROM queues WHERE name=?", (queue,)).fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<?) "
            "INSERT INTO messages(queue_id, id, visible_at, expires_at, enqueued_at, headers, "
            "body) SELECT ?, i, ?, ?, ?, '{}', zeroblob(100) FROM n",
            (n, qid, now - 10_000, now - 1_000, now - 10_000),
        )
        conn.execute("UPDATE queues SET next_id=?, size=? WHERE id=?", (n + 1, n, qid))
        conn.execute("COMMIT")


def _back_to_dead_letters(path: Path, queue: str) -> None:
    """Move every message of ``queue`` to its dead-letter queue as its dead letters."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        (qid,), (dlq,) = (
            conn.execute("SELECT id FROM queues WHERE name=?", (name,)).fetchone()
            for name in (queue, queue + ".dlq")
        )
        conn.execute("BEGIN IMMEDIATE")
        n = conn.execute(
            "UPDATE messages SET queue_id=?, headers=? WHERE queue_id=?",
            (dlq, json.dumps({"x-original-queue": queue}), qid),
        ).rowcount
        conn.execute("UPDATE queues SET size=0, dead_lettered=? WHERE id=?", (n, qid))
        conn.execute(
            "UPDATE queues SET size=?, next_id=(SELECT MAX(id)+1 FROM messages WHERE queue_id=?) "
            "WHERE id=?",
            (n, dlq, dlq),
        )
        conn.execute("COMMIT")


def test_ttl_sweep_browse_redrive_and_purge_a_million(tmp_path: Path) -> None:
    """TTL sweep, dead_letters(limit), redrive and purge over 1,000,000
    messages: each in bounded memory, no write transaction longer than
    HOLD_S, every message accounted for."""
    path = tmp_path / "million.db"
    with Client(f"sqlite:///{path}?maintenance_interval=0") as client:
        client.declare_queue("big", ttl="1h")
        _fill_expired(path, "big", N)
        with measured(client) as m:
            assert client.engine.queues.sweep_expired(int(time.time() * 1000)) == N
        check(m)
        assert client.queue_stats("big.dlq").ready == N
        with measured(client) as m:
            dead = client.dead_letters("big", limit=100)
        check(m)
        assert [d.headers["x-dead-letter-reason"] for d in dead] == ["expired"] * 100
        with measured(client) as m:
            assert client.redrive("big") == N
        check(m)
        assert (client.queue_stats("big").ready, client.queue_stats("big.dlq").ready) == (N, 0)
        _back_to_dead_letters(path, "big")
        with measured(client) as m:
            assert client.purge_dead_letters("big") == N
        check(m)
        assert client.queue_stats("big.dlq").ready == 0


def test_compaction_of_a_million_records(tmp_path: Path) -> None:
    """Compaction of 1,000,000 records (1,000 keys, each rewritten 1,000
    times): bounded memory, no write transaction longer than HOLD_S, and
    exactly the latest record of each key left."""
    with Client(f"sqlite:///{tmp_path}/compact.db?maintenance_interval=0") as client:
        client.create_topic("states", compact=True)
        producer = client.producer()
        keys = [f"k{i}" for i in range(1000)]
        for round_ in range(N // 1000):
            producer.send_batch("states", [b"%d" % round_ + b"." * 96] * 1000, keys=keys)
        with measured(client) as m:
            assert client.compact("states") == N - 1000
        check(m)
        kept = client.engine.log.read("states", 0, 0, 5000)
        assert [r.offset for r in kept] == list(range(N - 1000, N))
