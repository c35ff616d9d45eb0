"""The runtime's queue handlers under SIGKILL and SIGTERM on RabbitMQ, in
real `tidings run` processes (R2, R4; issue 12).

* A handler that kills its own process is counted before it runs (RabbitMQ
  returns the message when the dead process's channel closes, and its
  quorum queue counts the return) and parked after the policy's deliveries,
  in the SQL database of the URL's ``failed_store=``; the others are handled.
* SIGTERM: stop leasing, finish what is held, ack it, exit 0; nothing held
  is returned or counted (amqp:// cannot release a lease uncounted).
"""

from __future__ import annotations

import json
import os
import signal
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
from tidings.ports.failed import FailedFilter
from tidings.runtime.triage import FailedEvents
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"

APP = """
import os, signal, time
from tidings.runtime import App, RetryPolicy

app = App("crashy")
policy = RetryPolicy(immediate=0, delayed=2, backoff=0.01, backoff_max=0.05)
LOG = os.path.join(os.path.dirname(__file__), "handled.log")


def note(text):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (text + "\\n").encode())
    os.close(fd)


@app.handler(queue=os.environ["JOBS"], policy=policy, max_in_flight=10)
def on_job(payload: bytes) -> None:
    if os.environ.get("SLOW"):
        time.sleep(0.1)
    note(payload.decode())
    if payload == b"kill":
        os.kill(os.getpid(), signal.SIGKILL)
"""

pytestmark = pytest.mark.engine("rabbitmq")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """(app directory, engine URL, queue name); the queue is deleted after."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    module = f"crashy_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    (tmp_path / "module").write_text(module)
    queue = f"rtcrash-{uuid.uuid4().hex[:8]}"
    url = f"{AMQP}?failed_store=sqlite:///{tmp_path / 'failed.db'}"
    yield tmp_path, url, queue
    with Client(AMQP) as client:
        try:
            client.engine.queues.get_queue(queue)
        except QueueNotFound:
            return
        client.engine.queues.delete_declared()  # type: ignore[attr-defined]


def spawn(app_dir: Path, url: str, queue: str, **env: str) -> subprocess.Popen[bytes]:
    module = (app_dir / "module").read_text()
    with open(app_dir / "stderr.log", "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings.cli.main", "--url", url, "run", f"{module}:app"],
            cwd=app_dir, stdout=subprocess.DEVNULL, stderr=err,
            env={**os.environ, "JOBS": queue, **env},
        )  # fmt: skip


def handled(app_dir: Path) -> list[str]:
    path = app_dir / "handled.log"
    return path.read_text().splitlines() if path.exists() else []


def parked(url: str) -> list[object]:
    with Client(url) as client:
        return FailedEvents(client).find(FailedFilter())  # type: ignore[return-value]


def test_a_handler_that_kills_its_process_is_counted_and_parked(
    setup: tuple[Path, str, str],
) -> None:
    app_dir, url, queue = setup
    with Client(url) as client:
        client.declare_queue(queue, lease="5s")
        client.publish_batch(queue, [b"a", b"b", b"kill", b"c", b"d"])
    deaths = 0
    deadline = time.monotonic() + 90
    proc = spawn(app_dir, url, queue)
    try:
        while not (len(parked(url)) == 1 and {"a", "b", "c", "d"} <= set(handled(app_dir))):
            assert time.monotonic() < deadline, f"not done after {deaths} deaths"
            if proc.poll() is not None:
                assert proc.returncode == -signal.SIGKILL, (app_dir / "stderr.log").read_text()
                deaths += 1
                proc = spawn(app_dir, url, queue)
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (e,) = parked(url)
    rounds = 3  # policy: 1 + delayed=2
    assert (e.source, e.queue, e.payload) == ("queue", queue, b"kill")  # type: ignore[attr-defined]
    assert e.exception_type == "DeliveriesExhausted"  # type: ignore[attr-defined]
    assert e.attempts == rounds + 1  # type: ignore[attr-defined]  # counted before each run
    runs = handled(app_dir).count("kill")
    assert runs == deaths == rounds  # parked before a fourth run
    logs = [
        json.loads(x) for x in (app_dir / "stderr.log").read_text().splitlines() if x[:1] == "{"
    ]
    assert any(x.get("failed_event") == e.id for x in logs)  # type: ignore[attr-defined]
    with Client(url) as client:
        assert client.get(queue, wait=0.5) == []  # everything else was acked


def test_sigterm_finishes_what_it_holds_acks_and_exits(setup: tuple[Path, str, str]) -> None:
    app_dir, url, queue = setup
    with Client(url) as client:
        client.declare_queue(queue, lease="30s")
        client.publish_batch(queue, [b"m%d" % i for i in range(30)])
    proc = spawn(app_dir, url, queue, SLOW="1")
    try:
        deadline = time.monotonic() + 30
        while len(handled(app_dir)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = handled(app_dir)
    assert 2 < len(done) < 30 and len(set(done)) == len(done)  # a batch was finished
    with Client(url) as client:
        rest = client.get(queue, 30, wait=1.0)
        assert sorted([d.body.decode() for d in rest] + done) == sorted(f"m{i}" for i in range(30))
        assert {d.delivery_count for d in rest} == {1}  # nothing held was returned
        client.ack(rest)
