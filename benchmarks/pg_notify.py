"""What wake-ups cost with 8 concurrent producers on PostgreSQL.

PostgreSQL takes a database-wide lock when a transaction that notified
commits (``PreCommit_Notify``), held until the commit is flushed: commits
that notify are serialised, WAL flush included. This script runs 8 producer
processes (one client each, each on its own partition and queue, so they
share no row) and compares, in the same run, three ways of waking
consumers:

* ``in-commit``: ``pg_notify`` inside the writing transaction (what tidings
  did before: the writer's COMMIT and the one-statement publish carried it);
* ``after``: what tidings does now (``engines/sql/pg_wake.py``): after the
  commit, from a thread of the client, and only for channels some client
  waits on — here nobody waits, so no NOTIFY is sent (one cheap statement
  per commit remains);
* ``none``: no wake-ups at all (the floor).

Modes are interleaved in random order within each round (the machine may
be shared), so compare the per-round ratios.

    python benchmarks/pg_notify.py [URL] [SECONDS] [ROUNDS]

URL defaults to postgresql://127.0.0.1:5432/test; a schema of its own is
created and dropped.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import statistics
import sys
import time
import uuid
from typing import Any

PRODUCERS = 8
MODES = ("in-commit", "after", "none")


def _set_mode(mode: str) -> None:
    """Patch this producer process's engine for ``mode``."""
    from tidings.engines.sql import pg_fast, postgres

    sql = postgres.sql  # psycopg's, through the engine (drivers stay under engines/)

    if mode == "after":
        return
    postgres.WakeSender.send = lambda self, channels: None  # type: ignore[method-assign]
    postgres.Presence.hold = lambda self, channels: None  # type: ignore[method-assign]
    if mode == "none":
        return

    def commit_notifying(self: Any, channels: set[str]) -> None:
        notes = [
            sql.SQL("SELECT pg_notify({}, {})").format(
                sql.Literal(postgres.CHANNEL), sql.Literal(c)
            )
            for c in sorted(channels)
        ]
        self.conn.raw.execute(sql.SQL("; ").join([*notes, sql.SQL("COMMIT")]))

    postgres.PgSession.commit = commit_notifying  # type: ignore[method-assign]
    for name, column in (("_PUBLISH", "r.first"), ("_PUBLISH_ONE", "r.id")):
        text = getattr(pg_fast, name)
        notify = f"{column}, pg_notify('tidings', 'queue:' || %(name)s)"
        setattr(pg_fast, name, text.replace(f"SELECT {column} FROM r", f"SELECT {notify} FROM r"))


def _producer(
    url: str, workload: str, i: int, mode: str, start: Any, seconds: float, out: Any
) -> None:
    _set_mode(mode)
    from tidings import Client

    with Client(url) as client:
        producer = client.producer()
        start.wait()
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            if workload == "append":  # one record per call, each producer its own partition
                producer.send_batch("notify-bench", [b"x" * 100], keys=None, partition=i)
            else:  # one message per call, each producer its own queue
                client.publish(f"notify-bench-{i}", b"x" * 100)
            n += 1
        out.put(n)


def run(url: str, workload: str, mode: str, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(PRODUCERS + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_producer, args=(url, workload, i, mode, start, seconds, out))
        for i in range(PRODUCERS)
    ]
    for p in procs:
        p.start()
    start.wait()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "postgresql://127.0.0.1:5432/test"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    from tidings import Client
    from tidings.engines.sql.postgres import psycopg

    schema = f"notify_bench_{uuid.uuid4().hex[:8]}"
    url = f"{base}?schema={schema}"
    with Client(url) as client:
        client.create_topic("notify-bench", partitions=PRODUCERS)
        for i in range(PRODUCERS):
            client.declare_queue(f"notify-bench-{i}")
    try:
        for workload in ("append", "publish"):
            rates: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(rounds):
                for mode in random.sample(MODES, len(MODES)):
                    rates[mode].append(run(url, workload, mode, seconds))
            _report(workload, rates)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _report(workload: str, rates: dict[str, list[float]]) -> None:
    med = {m: statistics.median(r) for m, r in rates.items()}
    print(f"{workload}: {PRODUCERS} producer processes, 1 per call, {len(rates['none'])} rounds")
    for mode in MODES:
        runs = ", ".join(f"{r:,.0f}" for r in rates[mode])
        print(f"  {mode:9s} median {med[mode]:8,.0f}/s   runs: {runs}")
    for mode in ("in-commit", "after"):
        ratios = [a / b for a, b in zip(rates[mode], rates["none"], strict=True)]
        print(
            f"  {mode}/none per round: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + f"  (median {statistics.median(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
