"""Relays as real processes: SIGKILL of the active relay mid-batch (a
standby takes over, nothing lost, duplicates carry the same idempotency
key, per-key order kept) and a relay frozen by SIGSTOP past its lease
(fenced: it publishes nothing after the standby took over). O2, O3."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.outbox import IDEMPOTENCY_HEADER, Outbox, migrate, status
from tidings.testing.pytest_plugin import require_engine, service_reachable

WORKER = str(Path(__file__).with_name("outbox_worker.py"))
PG = "postgresql://127.0.0.1:5432/test"
TOPIC = "relay-faults"


class App:
    def __init__(self, url: str, engine_url: str, connect: Callable[[], Any], begin: str) -> None:
        self.url, self.engine_url, self.connect, self.begin = url, engine_url, connect, begin


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "app.db"
        yield App(
            f"sqlite:///{path}",
            f"sqlite:///{tmp_path / 'bus.db'}",
            lambda: sqlite3.connect(path, isolation_level=None, timeout=30),
            "BEGIN IMMEDIATE",
        )
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"obf_{uuid.uuid4().hex[:10]}"

    def connect() -> Any:
        conn = psycopg.connect(PG, autocommit=True)
        conn.execute(f'SET search_path TO "{schema}"')
        return conn

    with psycopg.connect(PG, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG}?schema={schema}"
    yield App(url, url, connect, "BEGIN")
    with psycopg.connect(PG, autocommit=True) as c:
        c.execute("SET lock_timeout = '10s'")
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _relay(app: App, owner: str, lease: float = 1.0, batch: int = 50) -> subprocess.Popen[str]:
    args = [sys.executable, WORKER, app.url, app.engine_url, owner, str(lease), str(batch)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _write(app: App, start: int, count: int, keys: int = 5) -> None:
    """Values ``k<j>:<n>`` with n counting up per key across calls."""
    conn = app.connect()
    conn.execute(app.begin)
    for i in range(start, start + count):
        Outbox().add(conn, f"topic:{TOPIC}", f"k{i % keys}:{i}".encode(), key=f"k{i % keys}")
    conn.execute("COMMIT")
    conn.close()


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _records(client: Client) -> list[tuple[str, str]]:
    """(idempotency key, value) of every record, in log order."""
    return [
        (r.headers[IDEMPOTENCY_HEADER], (r.value or b"").decode())
        for r in client.engine.log.read(TOPIC, 0, 0, 100_000)
    ]


def _check_once_each_in_order(records: list[tuple[str, str]], expected: int) -> int:
    """Nothing lost; a duplicate repeats its key with the same value; in
    first-seen order each key's values count up. Returns the duplicates."""
    first: dict[str, str] = {}
    for idem, value in records:
        assert first.setdefault(idem, value) == value, "one idempotency key, two values"
    assert len(first) == expected, "events lost"
    last: dict[str, int] = {}
    for value in first.values():
        key, n = value.split(":")
        assert int(n) > last.get(key, -1), f"{key} out of order at {n}"
        last[key] = int(n)
    return len(records) - len(first)


def _stop(*procs: subprocess.Popen[str]) -> list[str]:
    errs = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.terminate()
        _, err = p.communicate(timeout=20)
        errs.append(err)
    return errs


def test_sigkill_of_the_active_relay_mid_batch_loses_nothing(app: App) -> None:
    """Three rounds: the active relay is SIGKILLed at a random point of its
    work, a standby takes over, a fresh standby joins, more events arrive."""
    migrate(app.url)
    client = Client(app.engine_url)
    client.create_topic(TOPIC)
    _write(app, 0, 3000)
    relays = {name: _relay(app, name) for name in ("r0", "r1")}
    rng, written = random.Random(), 3000
    try:
        for round_ in range(3):
            # Never past what was written: a fast relay may have forwarded
            # nearly all of it already (the kill then lands between batches).
            target = min(status(app.url)[0].forwarded + rng.randint(100, 700), written)
            _wait(lambda t=target: status(app.url)[0].forwarded >= t)  # type: ignore[misc]
            holder = status(app.url)[0].owner
            assert holder in relays
            relays[holder].kill()  # SIGKILL, somewhere inside its loop
            relays[holder].wait()
            relays[f"r{round_ + 2}"] = _relay(app, f"r{round_ + 2}")
            _write(app, written, 300)
            written += 300
        _wait(lambda: status(app.url)[0].pending == 0)
        holder = status(app.url)[0].owner
        assert holder is not None and relays[holder].poll() is None  # a live standby took over
    finally:
        _stop(*relays.values())
    duplicates = _check_once_each_in_order(_records(client), written)
    print(f"duplicates after 3 kills: {duplicates}")
    assert duplicates <= 3 * 50  # at most the batch in flight at each kill
    client.close()


def test_a_relay_frozen_past_its_lease_is_fenced_and_publishes_nothing(app: App) -> None:
    migrate(app.url)
    client = Client(app.engine_url)
    client.create_topic(TOPIC)
    _write(app, 0, 50)
    zombie = _relay(app, "zombie")
    standby = None
    try:
        _wait(lambda: status(app.url)[0].pending == 0 and status(app.url)[0].owner == "zombie")
        zombie.send_signal(signal.SIGSTOP)
        standby = _relay(app, "standby")
        _write(app, 50, 50)
        _wait(lambda: status(app.url)[0].pending == 0)  # after the zombie's lease ran out
        assert status(app.url)[0].owner == "standby"
        zombie.send_signal(signal.SIGCONT)
        _write(app, 100, 50)
        _wait(lambda: status(app.url)[0].pending == 0)
        time.sleep(0.5)  # the zombie has woken and run its rounds by now
        assert zombie.poll() is None and status(app.url)[0].owner == "standby"
    finally:
        zombie_err, _ = _stop(zombie, *([standby] if standby else []))
    assert _check_once_each_in_order(_records(client), 150) == 0  # no zombie publish
    assert "lost shard 0 (fenced)" in zombie_err
    client.close()
