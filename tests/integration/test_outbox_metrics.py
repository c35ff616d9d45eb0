"""Outbox metrics (issue 11, observability): ``tidings relay
--metrics-port`` serves per-shard pending, lag, forwarded and failed counts
and the lease holder in the Prometheus text format, from a real relay
process."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tidings import Client
from tidings.outbox import Outbox, migrate, status
from tidings.outbox.metrics import render


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _scrape(port: int, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                body: str = r.read().decode()
                return body
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the relay never served /metrics"
            time.sleep(0.05)


def _series(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _add(path: Path, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        Outbox("orders").add(conn, "topic:m-t", f"e{i}", key=f"k{i}")
    conn.execute("COMMIT")
    conn.close()


def test_render_has_every_shard_and_series(tmp_path: Path) -> None:
    app = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(app, {"orders": 2})
    _add(tmp_path / "app.db", 5)
    series = _series(render(status(app, "orders")))
    pending = [series[f'tidings_outbox_pending{{outbox="orders",shard="{s}"}}'] for s in (0, 1)]
    assert sum(pending) == 5
    for s in (0, 1):
        labels = f'outbox="orders",shard="{s}"'
        assert series[f"tidings_outbox_forwarded_total{{{labels}}}"] == 0
        assert series[f"tidings_outbox_failed_total{{{labels}}}"] == 0
        assert series[f'tidings_outbox_lease_held{{{labels},owner=""}}'] == 0


def test_a_running_relay_serves_its_metrics(tmp_path: Path) -> None:
    app, bus = f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'bus.db'}"
    migrate(app, {"orders": 1})
    with Client(bus) as client:
        client.create_topic("m-t")
    _add(tmp_path / "app.db", 7)
    port = _free_port()
    cmd = [sys.executable, "-m", "tidings.cli.main", "relay", "--db", app, "--to", bus]
    proc = subprocess.Popen(
        [*cmd, "--outbox", "orders", "--metrics-port", str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        labels = 'outbox="orders",shard="0"'
        while True:  # the relay forwards the 7 events and keeps its lease
            series = _series(_scrape(port, deadline))
            if series.get(f"tidings_outbox_forwarded_total{{{labels}}}") == 7:
                break
            assert time.monotonic() < deadline, series
            time.sleep(0.05)
        assert series[f"tidings_outbox_pending{{{labels}}}"] == 0
        held = [k for k, v in series.items() if k.startswith("tidings_outbox_lease_held") and v]
        assert len(held) == 1 and 'owner=""' not in held[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
