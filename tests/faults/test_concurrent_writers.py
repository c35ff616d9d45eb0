"""Several processes writing the same things at the same moment, on SQLite
(one file) and PostgreSQL (issue 8): idempotency keys (Q3) and
declarations. The memory engine is one process: nothing to race there."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidings import AlreadyExists, Client, ConfigurationError
from tidings.testing.pytest_plugin import require_engine, service_reachable

WORKERS = str(Path(__file__).with_name("workers.py"))
PG = "postgresql://127.0.0.1:5432/test"
PROCESSES = 4
KEYS = 120


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'race.db'}"
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg  # a test dependency (the dev extra): never skipped

    schema = f"race_{uuid.uuid4().hex[:10]}"
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def start_together(*commands: list[str]) -> list[str]:
    """Run worker processes; once each has printed "ready", release them all
    at once (a line on stdin) and return their outputs."""
    procs = [
        subprocess.Popen(
            [sys.executable, WORKERS, *cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            assert line == "ready\n", f"worker did not start: {line!r} {p.stderr.read()}"  # type: ignore[union-attr]
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"worker failed ({p.returncode}): {err[-3000:]}"
            outs.append(out)
        return outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.timeout(180)
def test_same_keys_from_several_processes_store_one_message_each(url: str) -> None:
    """Q3 under concurrency: 4 processes (2 threads each) publish the same
    keys at the same moments, through single publishes, keyed batches, an
    exchange and publishes in their own transactions: exactly one message
    per key is stored, and every process got that message's id for the
    key."""
    queue, exchange = f"dedup-{uuid.uuid4().hex[:6]}", f"fan-{uuid.uuid4().hex[:6]}"
    with Client(url) as client:
        client.declare_queue(queue)
        client.declare_exchange(exchange, "fanout")
        client.bind(exchange, queue)
    outs = start_together(
        *[["publish-keys", url, queue, exchange, str(KEYS)] for _ in range(PROCESSES)]
    )
    ids: dict[str, set[int]] = defaultdict(set)
    for out in outs:
        lines = out.split()
        assert len(lines) == 2 * KEYS, out[-500:]
        for key, mid in zip(lines[::2], lines[1::2], strict=True):
            ids[key].add(int(mid))
    assert len(ids) == KEYS
    split = {k: sorted(v) for k, v in ids.items() if len(v) != 1}
    with Client(url) as client:
        stored = client.get(queue, 10 * KEYS)
        bodies = sorted(d.body.decode() for d in stored)
        assert not split, f"{len(split)} keys got different ids in different processes"
        assert len(bodies) == KEYS, f"{len(bodies)} messages stored for {KEYS} keys"
        assert bodies == sorted(ids)
        assert {d.id for d in stored} == {next(iter(v)) for v in ids.values()}


def _together(n: int, call: Callable[[int], object]) -> list[object]:
    """``call(i)`` from ``n`` threads released at once; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except BaseException as exc:  # reported by the caller's assertion
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@pytest.mark.timeout(120)
def test_declaring_the_same_thing_at_once_succeeds_for_all(url: str) -> None:
    """Replicas declaring the same queue (with a dead-letter queue), the same
    exchange and the same partition count at startup all succeed, each on
    its own connections; different settings still get AlreadyExists /
    ConfigurationError."""
    n = 6
    clients = [Client(url) for _ in range(n)]
    try:
        for round_ in range(5):
            queue, exchange = f"q{round_}-{uuid.uuid4().hex[:6]}", f"x{round_}"
            topic = f"t{round_}-{uuid.uuid4().hex[:6]}"
            clients[0].create_topic(topic, partitions=1)

            def declare(i: int, queue: str = queue, exchange: str = exchange) -> object:
                clients[i].declare_queue(queue, dead_letter=queue + "-dlq", lease="10s")
                clients[i].declare_exchange(exchange, "direct")
                return "ok"

            results = _together(n, declare)
            assert results == ["ok"] * n, [r for r in results if r != "ok"]

            def grow(i: int, topic: str = topic) -> object:
                try:
                    clients[i].add_partitions(topic, 3)
                except ConfigurationError:
                    return "already"  # another replica grew it first: the typed refusal
                return "ok"

            grown = _together(n, grow)
            assert grown.count("ok") == 1 and grown.count("already") == n - 1, grown
            assert clients[0].topic(topic).partitions == 3
            with pytest.raises(AlreadyExists):
                clients[1].declare_queue(queue, lease="20s")
            with pytest.raises(AlreadyExists):
                clients[1].declare_exchange(exchange, "fanout")
    finally:
        for c in clients:
            c.close()
