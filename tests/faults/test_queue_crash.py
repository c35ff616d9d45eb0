"""Queue crash tests in real processes, on SQLite and PostgreSQL (issues 3, 4)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import Client
from tidings.testing.pytest_plugin import require_engine, service_reachable

WORKERS = str(Path(__file__).with_name("workers.py"))


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKERS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def logged(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(int(r[0]), int(r[1])) for r in rows if len(r) == 2]


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


PG = "postgresql://127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same crashes on the embedded engine and on PostgreSQL (where
    competing processes claim with SKIP LOCKED on separate connections)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'q.db'}"
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg  # a test dependency (the dev extra): never skipped

    schema = f"qcrash_{uuid.uuid4().hex[:10]}"
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.timeout(60)
def test_killed_consumer_leases_are_redelivered(url: str, tmp_path: Path) -> None:
    """Q1: SIGKILL a consumer holding leases; after the lease the messages come
    back with delivery_count 2, and none is lost."""
    with Client(url) as client:
        client.declare_queue("jobs", lease="1s")
        client.publish_batch("jobs", [b"%d" % i for i in range(5)])
        log = tmp_path / "holder.log"
        holder = spawn("consume-queue", url, "jobs", str(log), "60")  # holds its leases
        wait_for(lambda: len(logged(log)) == 5, 15)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=10)
        assert client.get("jobs", 5) == []  # still leased
        again = client.get("jobs", 5, wait=5)
        assert sorted(d.id for d in again) == sorted(i for i, _ in logged(log))
        assert {d.delivery_count for d in again} == {2} and all(d.redelivered for d in again)
        client.ack(again)
        assert client.queue_stats("jobs").ready == 0


@pytest.mark.timeout(60)
def test_killed_publisher_batch_is_all_or_nothing(url: str, tmp_path: Path) -> None:
    """Q-publish: SIGKILL a publisher in the middle of big batches; each batch
    is wholly present or wholly absent."""
    script = (
        "import sys\nfrom tidings import Client\n"
        "c, run = Client(sys.argv[1]), sys.argv[2].encode()\n"
        "for b in range(10_000):\n"
        "    c.publish_batch('batches', [run + b'.%d:%d' % (b, i) for i in range(500)])\n"
        "    print(b, flush=True)\n"
    )
    with Client(url) as client:
        client.declare_queue("batches")
    for run in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, url, str(run)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.15)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    with Client(url) as client:
        counts: Counter[bytes] = Counter()
        while got := client.get("batches", 1000):
            counts.update(d.body.split(b":")[0] for d in got)
            client.ack(got)
    assert len(counts) >= 3  # at least one whole batch per run
    assert set(counts.values()) == {500}, "a batch was stored in part"


@pytest.mark.timeout(120)
def test_competing_consumer_processes_ack_each_message_once(url: str, tmp_path: Path) -> None:
    """Q1: four consumer processes compete; without crashes each message is
    acked exactly once in total."""
    with Client(url) as client:
        client.declare_queue("work")
        client.publish_batch("work", [b"m%d" % i for i in range(1000)])
        logs = [tmp_path / f"c{i}.log" for i in range(4)]
        procs = [spawn("consume-queue", url, "work", str(log)) for log in logs]
        wait_for(
            lambda: client.queue_stats("work").ready + client.queue_stats("work").leased == 0, 60
        )
        for p in procs:
            p.kill()
            p.communicate(timeout=10)
    seen = Counter(i for log in logs for i, _ in logged(log))
    assert len(seen) == 1000 and set(seen.values()) == {1}


@pytest.mark.timeout(120)
def test_competing_consumers_with_crashes_lose_nothing(url: str, tmp_path: Path) -> None:
    """Q1: four consumer processes compete and two are SIGKILLed mid-way;
    every message is still delivered and acked, and a message seen twice was
    redelivered (another delivery_count) — duplicates only in the
    at-least-once window."""
    with Client(url) as client:
        client.declare_queue("crashy", lease="1s")
        client.publish_batch("crashy", [b"m%d" % i for i in range(1000)])
        logs = [tmp_path / f"k{i}.log" for i in range(4)]
        procs = [spawn("consume-queue", url, "crashy", str(log), "0.02") for log in logs]
        wait_for(lambda: sum(len(logged(log)) for log in logs) >= 200, 30)
        for victim in procs[:2]:
            victim.send_signal(signal.SIGKILL)
            victim.communicate(timeout=10)

        def drained() -> bool:
            stats = client.queue_stats("crashy")
            return stats.ready + stats.leased + stats.delayed == 0

        wait_for(drained, 60)
        for p in procs[2:]:
            p.kill()
            p.communicate(timeout=10)
    counts: dict[int, list[int]] = {}
    for log in logs:
        for mid, count in logged(log):
            counts.setdefault(mid, []).append(count)
    assert len(counts) == 1000, "a message was lost"
    # A repeat is a redelivery (a new delivery_count), never the same lease twice.
    assert all(len(c) == len(set(c)) for c in counts.values())
