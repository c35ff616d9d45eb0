"""The ``tidings`` command line on RabbitMQ, in real processes (issue 12):
queues, publish, get, dlq; the outbox relay forwarding to an amqp:// queue;
and `tidings run` + `tidings failed ...` with the failed events in the
SQL database of the URL's ``failed_store=`` option."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import Client
from tidings.errors import QueueNotFound
from tidings.outbox import IDEMPOTENCY_HEADER, Outbox, Relay, migrate
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"

pytestmark = pytest.mark.engine("rabbitmq")


def tidings(
    url: str,
    *argv: str,
    stdin: str = "",
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """``python -m tidings.cli.main --url URL ARGV`` in its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "tidings.cli.main", "--url", url, *argv],
        input=stdin.encode(), capture_output=True, timeout=60, cwd=cwd, env=env, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue name of this test's own; it and its dead-letter queue are deleted after."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    name = f"cli-{uuid.uuid4().hex[:10]}"
    yield name
    with Client(AMQP) as client:
        for n in (name, f"{name}.dlq"):
            try:
                client.engine.queues.get_queue(n)
            except QueueNotFound:
                pass
        client.engine.queues.delete_declared()  # type: ignore[attr-defined]


def test_queues_publish_get_and_dead_letters(queue: str) -> None:
    q, url = queue, AMQP
    assert tidings(url, "queues", "declare", q, "--lease", "30s", "--max-deliveries", "3")[0] == 0
    code, out, _ = tidings(url, "publish", q, stdin="a\nb\nc\nd\n")
    ids = out.split()
    assert code == 0 and len(ids) == 4 and len(set(ids)) == 4
    code, out, _ = tidings(url, "--json", "queues", "describe", q)
    assert code == 0 and json.loads(out)["ready"] == 4
    code, out, _ = tidings(url, "--json", "get", q, "--max", "2", "--ack")
    got = lines(out)
    assert [g["body"] for g in got] == ["a", "b"] and [g["delivery_count"] for g in got] == [1, 1]
    assert [str(g["id"]) for g in got] == ids[:2]
    code, out, _ = tidings(url, "--json", "get", q, "--nack", "--delay", "0.3s")
    assert code == 0 and lines(out)[0]["body"] == "c"
    code, out, _ = tidings(url, "--json", "get", q, "--reject")
    assert code == 0 and lines(out)[0]["body"] == "d"
    time.sleep(0.5)  # c is back from its delay
    code, out, _ = tidings(url, "--json", "get", q, "--wait", "5s")
    again = lines(out)[0]
    assert (again["body"], again["delivery_count"]) == ("c", 2)  # the get without ack: returned
    code, out, _ = tidings(url, "--json", "dlq", "list", q)
    (dead,) = lines(out)
    assert dead["body"] == "d" and dead["headers"]["x-dead-letter-reason"] == "rejected"  # type: ignore[index]
    code, out, _ = tidings(url, "--json", "dlq", "redrive", q)
    assert code == 0
    code, out, _ = tidings(url, "--json", "get", q, "--max", "5", "--wait", "5s", "--ack")
    assert sorted(str(g["body"]) for g in lines(out)) == ["c", "d"]
    tidings(url, "publish", q, stdin="e\n")
    tidings(url, "get", q, "--reject")
    code, out, _ = tidings(url, "--json", "dlq", "purge", q)
    assert code == 0 and tidings(url, "--json", "dlq", "list", q)[1] == ""
    tidings(url, "publish", q, stdin="f\ng\n")
    code, out, _ = tidings(url, "--json", "queues", "purge", q)
    assert (
        code == 0 and json.loads(tidings(url, "--json", "queues", "describe", q)[1])["ready"] == 0
    )
    assert tidings(url, "queues", "delete", q)[0] == 0
    code, _, err = tidings(url, "publish", q, stdin="x\n")
    assert code == 1 and "QueueNotFound" in err


def test_unsupported_options_are_typed_errors(queue: str) -> None:
    """What amqp:// cannot do is a typed error on the command line, and
    leaves nothing behind; what it emulates (FIFO groups) just works."""
    code, _, err = tidings(AMQP, "queues", "declare", queue + "-f", "--fifo", "--max-length", "5")
    assert code == 1 and "UnsupportedFeature" in err and "max_length" in err
    code, _, err = tidings(AMQP, "queues", "describe", queue + "-f")
    assert code == 1 and "QueueNotFound" in err
    tidings(AMQP, "queues", "declare", queue, "--fifo")
    assert tidings(AMQP, "publish", queue, "--group", "g", stdin="a\nb\n")[0] == 0
    code, out, _ = tidings(AMQP, "get", queue, "--max", "10", "--ack")
    got = [json.loads(line)["body"] for line in out.splitlines()]
    assert code == 0 and got == ["a"]  # one message of a group in flight at a time
    assert json.loads(tidings(AMQP, "--json", "queues", "describe", queue)[1])["ready"] == 1


def _outbox_events(db: Path, queue: str, n: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        Outbox().add(conn, f"queue:{queue}", f"e{i}", key="k", headers={"n": str(i)})
        conn.execute("COMMIT")
    conn.close()


def test_the_outbox_relay_forwards_to_an_amqp_queue(queue: str, tmp_path: Path) -> None:
    """O2, O3 on amqp://: each committed event once, in commit order, with
    its idempotency key in the header (amqp:// has no Q3 dedup: the header
    is what an idempotent consumer keys on); in-process and as `tidings relay`."""
    app = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(app)
    with Client(AMQP) as client:
        client.declare_queue(queue)
        _outbox_events(tmp_path / "app.db", queue, 3)
        with Relay(app, client) as relay:
            assert relay.run(until_idle=True) == 3
        got = client.get(queue, 10, wait=2)
        client.ack(got)
    assert [d.body for d in got] == [b"e0", b"e1", b"e2"]
    assert [d.headers["n"] for d in got] == ["0", "1", "2"]
    keys = [d.headers[IDEMPOTENCY_HEADER] for d in got]
    assert len(set(keys)) == 3 and all(k.startswith("outbox:") for k in keys)

    _outbox_events(tmp_path / "app.db", queue, 2)
    code, out, err = tidings(AMQP, "--json", "relay", "--db", app, "--drain")
    assert code == 0 and json.loads(out) == {"forwarded": 2}, err
    code, out, _ = tidings(AMQP, "--json", "get", queue, "--max", "5", "--wait", "2s", "--ack")
    assert [g["body"] for g in lines(out)] == ["e0", "e1"]


APP = """
import os
from tidings.runtime import App, RetryPolicy

app = App("amqpcli")
SEEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen.log")
FIXED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixed")


@app.handler(queue=os.environ["MAILS"], policy=RetryPolicy(immediate=0, delayed=1, backoff=0.01,
                                                           backoff_max=0.02))
def on_mail(payload: bytes) -> None:
    if payload.startswith(b"bad") and not os.path.exists(FIXED):
        raise PermissionError("smtp refused " + payload.decode())
    with open(SEEN, "a") as f:
        f.write(payload.decode() + "\\n")
"""


def test_run_and_failed_triage_through_the_cli(queue: str, tmp_path: Path) -> None:
    """`tidings run` parks on amqp://; `tidings failed list/show/groups/
    replay/republish/discard/actions` triage it from other processes."""
    module = f"amqpcli_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    url = f"{AMQP}?failed_store=sqlite:///{tmp_path / 'failed.db'}"
    env = {**os.environ, "MAILS": queue, "PYTHONPATH": str(tmp_path)}
    code, _, err = tidings(AMQP, "run", f"{module}:app", cwd=tmp_path, env=env)
    assert code == 1 and "failed_store=" in err  # no store: refused, saying what to add
    tidings(url, "queues", "declare", queue)
    tidings(url, "publish", queue, stdin="ok-1\nbad-1\nbad-2\nbad-3\nok-2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli.main", "--url", url, "run", f"{module}:app"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while len(lines(tidings(url, "--json", "failed", "list")[1])) < 3:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        events = lines(tidings(url, "--json", "failed", "list", "--queue", queue)[1])
        assert sorted(str(e["payload"]) for e in events) == ["bad-1", "bad-2", "bad-3"]
        assert {e["exception_type"] for e in events} == {"PermissionError"}
        by_body = {str(e["payload"]): int(str(e["id"])) for e in events}
        shown = lines(tidings(url, "--json", "failed", "show", str(by_body["bad-1"]))[1])[0]
        assert (
            shown["queue"] == queue and shown["attempts"] == 2 and "smtp" in str(shown["traceback"])
        )
        (group,) = lines(tidings(url, "--json", "failed", "groups")[1])
        assert group["events"] == 3
        # republish while still broken: handled by the running app, parked again
        code, out, _ = tidings(url, "--json", "failed", "republish", str(by_body["bad-1"]))
        assert code == 0 and str(lines(out)[0]["detail"]).startswith(f"{queue}#")
        while not any(
            e["replay_count"] == 1 for e in lines(tidings(url, "--json", "failed", "list")[1])
        ):
            assert time.monotonic() < deadline + 30 and proc.poll() is None
            time.sleep(0.2)
        (tmp_path / "fixed").touch()
        code, out, _ = tidings(
            url, "--json", "failed", "replay", str(by_body["bad-2"]), "--load", f"{module}:app",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert code == 0 and lines(out)[0]["outcome"] == "ok"
        code, out, _ = tidings(url, "--json", "failed", "discard", "--all", "--actor", "ann")
        assert code == 0 and len(lines(out)) == 2  # bad-3 and the re-parked bad-1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen = (tmp_path / "seen.log").read_text().split()
    assert sorted(seen) == ["bad-2", "ok-1", "ok-2"]  # bad-2 by the replay
    acts = [
        (a["action"], a["outcome"]) for a in lines(tidings(url, "--json", "failed", "actions")[1])
    ]
    assert acts == [("republish", "ok"), ("replay", "ok"), ("discard", "ok"), ("discard", "ok")]
    assert lines(tidings(url, "--json", "failed", "list")[1]) == []
