"""Handlers whose state lives in the engine's own database, run with
``transaction=`` (R5 without an inbox), under SIGKILL in real `tidings run`
processes: the handler's write and its message's offset commit / ack are
one transaction, so every effect is in the application's table exactly once.
The table has no unique key and there is no inbox: only the shared
transaction keeps a redelivered message from being applied twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"

APP = """
import os, sqlite3, time
from tidings import GroupConfig
from tidings.runtime import App

app = App("txcrash")
fast_group = GroupConfig(session_timeout_s=1.0, heartbeat_interval_s=0.1)


def connect():
    kind, where = os.environ["APP_DB"].split(":", 1)
    if kind == "sqlite":
        return sqlite3.connect(where, timeout=30, check_same_thread=False)
    import psycopg
    return psycopg.connect(os.environ["PG"], options=f"-c search_path={where}")


def apply(ctx, what):
    ctx.connection.execute("INSERT INTO effects (what) VALUES (%s)" % PARAM, (what,))
    ctx.connection.execute("UPDATE accounts SET applied = applied + 1 WHERE id = 1")
    time.sleep(0.003)  # inside the transaction: kills land between write and commit


PARAM = "?" if os.environ["APP_DB"].startswith("sqlite") else "%s"


@app.handler(topic="payments", transaction=connect, group_config=fast_group, max_in_flight=20)
def on_payment(payload: bytes, ctx) -> None:
    apply(ctx, "topic " + payload.decode())


@app.handler(queue="jobs", transaction=connect, max_in_flight=20)
def on_job(payload: bytes, ctx) -> None:
    apply(ctx, "queue " + payload.decode())
"""


class Db:
    """The engine URL, ``APP_DB`` for the app, and the test's own connection."""

    def __init__(self, url: str, app_db: str, connect: Callable[[], Any], mark: str) -> None:
        self.url, self.app_db, self.connect, self.mark = url, app_db, connect, mark


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "bus.db"
        yield Db(f"sqlite:///{path}", f"sqlite:{path}", lambda: sqlite3.connect(path), "?")
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"rttx_{uuid.uuid4().hex[:10]}"
    yield Db(
        f"{PG}?schema={schema}",
        f"pg:{schema}",
        lambda: psycopg.connect(PG, options=f"-c search_path={schema}"),
        "%s",
    )
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def app_dir(tmp_path: Path, db: Db) -> Path:
    module = f"txcrash_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    (tmp_path / "module").write_text(module)
    with Client(db.url) as client:  # the engine's tables first: then the application's
        client.create_topic("payments", partitions=2)
        client.declare_queue("jobs", lease="2s")
    conn = db.connect()
    try:
        conn.execute("CREATE TABLE effects (what TEXT NOT NULL)")  # no unique key on purpose
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, applied INTEGER)")
        conn.execute("INSERT INTO accounts VALUES (1, 0)")
        conn.commit()
    finally:
        conn.close()
    return tmp_path


def spawn(app_dir: Path, db: Db) -> subprocess.Popen[bytes]:
    module = (app_dir / "module").read_text()
    env = {**os.environ, "APP_DB": db.app_db, "PG": PG}
    with open(app_dir / "stderr.log", "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings.cli.main", "--url", db.url, "run", f"{module}:app"],
            cwd=app_dir, stdout=subprocess.DEVNULL, stderr=err, env=env,
        )  # fmt: skip


def applied(db: Db) -> int:
    conn = db.connect()
    try:
        return int(conn.execute("SELECT applied FROM accounts WHERE id=1").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("source", ["topic", "queue"])
def test_sigkill_mid_stream_applies_each_message_exactly_once_without_an_inbox(
    app_dir: Path, db: Db, source: str
) -> None:
    n = 300
    with Client(db.url) as client:
        if source == "topic":
            with client.producer() as producer:
                producer.send_batch("payments", [b"%d" % i for i in range(n)])
        else:
            client.publish_batch("jobs", [b"%d" % i for i in range(n)])
    kills = 0
    deadline = time.monotonic() + 120
    while applied(db) < n:
        assert time.monotonic() < deadline, (app_dir / "stderr.log").read_text()[-3000:]
        proc = spawn(app_dir, db)
        start = applied(db)
        while applied(db) - start < 40 and applied(db) < n and proc.poll() is None:
            time.sleep(0.01)
        if applied(db) < n:
            proc.kill()  # SIGKILL mid-stream, most likely inside a handler's transaction
            kills += 1
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert kills >= 2
    print(f"{source}: {kills} SIGKILLs, {n} messages, each effect once")
    conn = db.connect()
    try:
        rows = [r[0] for r in conn.execute("SELECT what FROM effects").fetchall()]
    finally:
        conn.close()
    assert sorted(rows) == sorted(f"{source} {i}" for i in range(n))  # each once, none lost
    with Client(db.url) as client:
        if source == "topic":
            assert sum(client.engine.groups.committed("txcrash.on_payment").values()) == n
        else:
            stats = client.queue_stats("jobs")
            assert stats.ready + stats.leased + stats.delayed == 0
