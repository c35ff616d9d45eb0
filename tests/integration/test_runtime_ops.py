"""Operating the runtime: health endpoint, webhook alerts, long-pause alerts (issue 10)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tidings import Client
from tidings.runtime import App, Retry, RetryPolicy
from tidings.runtime.metrics import render
from tidings.runtime.runner import Runner, _serve_health
from tidings.runtime.testing import running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_endpoint_says_ready_then_not() -> None:
    app = App("svc")
    app.handler(topic="t", name="h")(lambda b: None)
    with Client("memory://") as client:
        client.create_topic("t")
        runner = Runner(app, client=client)
        port = free_port()
        server = _serve_health(runner, port)
        try:
            with pytest_raises_http(503):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            runner.start()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                body = json.loads(resp.read())
            assert resp.status == 200 and body["ready"] and body["handlers"]["h"]["alive"]
            client.produce("t", b"x")
            deadline = time.monotonic() + 10
            while runner.loops["h"].handled < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
            assert 'tidings_runtime_handled_total{app="svc",handler="h"} 1' in metrics
            assert 'tidings_runtime_lag{app="svc",handler="h"} 0' in metrics
            assert 'tidings_runtime_fetch_seconds_count{app="svc",handler="h"} 1' in metrics
            runner.stop()
            assert runner.health()["ready"] is False and runner.health()["state"] == "stopped"
        finally:
            server.shutdown()
            server.server_close()


class pytest_raises_http:
    def __init__(self, code: int) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        assert isinstance(exc, urllib.error.HTTPError) and exc.code == self.code, exc
        exc.close()
        return True


def test_webhook_alerts_and_long_pause_alert() -> None:
    received: list[dict[str, Any]] = []
    got = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = App("svc", alert=f"http://127.0.0.1:{server.server_address[1]}/alerts",
                  alert_pause_after=0.05)  # fmt: skip
        policy = RetryPolicy(immediate=0, delayed=4)

        @app.handler(topic="t", policy=policy)
        def h(payload: bytes) -> Retry:
            return Retry(0.03)  # exact delays: paused 0.06 s by the third round

        with running(app, prepare=lambda c: c.create_topic("t")) as r:
            r.client.produce("t", b"x")
            r.wait_until(lambda: {"paused", "parked"} <= {a["kind"] for a in received})
            metrics = render("svc", r.runner.loops)
        assert 'tidings_runtime_parked_total{app="svc",handler="h"} 1' in metrics
        assert 'tidings_runtime_failed_rounds_total{app="svc",handler="h"} 5' in metrics
        kinds = [a["kind"] for a in received]
        assert kinds.count("paused") == 1  # once per pause, not per round
        parked = next(a for a in received if a["kind"] == "parked")
        assert (
            parked["app"] == "svc"
            and parked["handler"] == "h"
            and parked["exception"] == "RetriesExhausted"
        )
    finally:
        server.shutdown()
        server.server_close()
    time.sleep(0)  # keep the import used on every path


def test_a_slow_queue_handler_keeps_its_leases() -> None:
    """Handling longer than the lease: the runtime extends it, so no other
    consumer gets the message meanwhile and it is handled once."""
    app = App("svc")
    calls: list[bytes] = []
    started = threading.Event()

    @app.handler(queue="slow")
    def h(payload: bytes) -> None:
        calls.append(payload)
        started.set()
        time.sleep(1.6)

    with running(app, prepare=lambda c: c.declare_queue("slow", lease="0.6s")) as r:
        r.client.publish("slow", b"job")
        assert started.wait(10)
        assert r.client.get("slow", wait=1.3) == []  # two lease lengths later: still leased
        r.wait_until(lambda: r.client.queue_stats("slow").leased == 0)
    assert calls == [b"job"]
