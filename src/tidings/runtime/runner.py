"""Running an App: one thread per handler, graceful shutdown (R4), health.

``Runner(app, url).start()`` checks every topic/queue exists (typed error
otherwise, nothing started), joins the groups and starts the loops;
``stop()`` stops fetching, lets each loop finish what it holds, commit and
leave. ``health()`` says whether every handler is running (readiness);
``run_until_signal`` adds SIGTERM/SIGINT handling and, optionally, a
health file rewritten every second or a tiny HTTP endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..client.client import Client
from ..errors import EngineError, TidingsError
from ..ports.failed import failed_store
from .app import App
from .metrics import render
from .queues import QueueLoop
from .topics import TopicLoop

log = logging.getLogger("tidings.runtime")


class Runner:
    """Runs an App's handlers on one engine (``url``, or ``client``'s)."""

    def __init__(self, app: App, url: str | None = None, client: Client | None = None) -> None:
        self.app = app
        self._own_client = client is None
        self.client = client or Client(url)
        self.store = failed_store(self.client.engine)
        self.stop_event = threading.Event()
        self.loops: dict[str, TopicLoop | QueueLoop] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._failed: dict[str, str] = {}
        self.state = "created"

    def start(self) -> Runner:
        """Check sources, join groups, start the loops. Raises
        TopicNotFound / QueueNotFound (nothing is left running)."""
        self.state = "starting"
        try:
            for spec in self.app.handlers.values():
                if spec.topic is not None:
                    self.client.topic(spec.topic)
                else:
                    self.client.queue(spec.queue)  # type: ignore[arg-type]
            for name, spec in self.app.handlers.items():
                self.loops[name] = (
                    TopicLoop(self.app, spec, self.client.engine, self.store, self.stop_event)
                    if spec.topic is not None
                    else QueueLoop(self.app, spec, self.client, self.store, self.stop_event)
                )
        except BaseException:
            for loop in self.loops.values():
                loop.close()
            self.state = "failed"
            raise
        for name in self.loops:
            t = threading.Thread(target=self._run_loop, args=(name,), name=f"tidings-{name}")
            self._threads[name] = t
            t.start()
        self.state = "running"
        log.info("app %s running %d handler(s)", self.app.name, len(self.loops))
        return self

    def _run_loop(self, name: str) -> None:
        loop = self.loops[name]
        try:
            while not self.stop_event.is_set():
                try:
                    loop.step()
                except EngineError as exc:
                    if not exc.retriable:
                        raise
                    log.warning("%s: engine error (%s); retrying", name, exc)
                    self.stop_event.wait(1.0)
        except Exception as exc:  # a loop that cannot go on: reported by health()
            self._failed[name] = f"{type(exc).__name__}: {exc}"
            log.exception("handler %s stopped", name)
        finally:
            loop.close()

    def stop(self, timeout: float | None = None) -> None:
        """Graceful shutdown: stop fetching, finish in flight, commit, leave."""
        if self.state in ("stopped", "created"):
            self._close_client()
            return
        self.state = "stopping"
        self.stop_event.set()
        for t in self._threads.values():
            t.join(timeout)
        self.state = "stopped"
        for spec in self.app.handlers.values():
            if spec.inbox is not None:
                spec.inbox.close()
        self._close_client()
        log.info("app %s stopped", self.app.name)

    def _close_client(self) -> None:
        if self._own_client:
            self.client.close()

    def health(self) -> dict[str, Any]:
        """``{"ready": bool, "state": ..., "handlers": {name: {...}}}``."""
        handlers = {
            name: {
                "alive": self._threads[name].is_alive() if name in self._threads else False,
                "handled": loop.handled,
                "error": self._failed.get(name),
            }
            for name, loop in self.loops.items()
        }
        ready = self.state == "running" and all(
            h["alive"] and not h["error"] for h in handlers.values()
        )
        return {"app": self.app.name, "ready": ready, "state": self.state, "handlers": handlers}

    def run_until_signal(
        self, health_file: str | None = None, health_port: int | None = None
    ) -> int:
        """Start, run until SIGTERM/SIGINT, stop gracefully; 0, or 1 if a
        handler stopped on an error. A second signal while stopping (a
        handler that does not return) exits at once with 130: what was
        not committed is delivered again."""
        stop = threading.Event()

        def on_signal(*_: object) -> None:
            if stop.is_set():
                log.warning("app %s: second signal, exiting without waiting", self.app.name)
                os._exit(130)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        self.start()
        server = _serve_health(self, health_port) if health_port is not None else None
        try:
            while not stop.wait(1.0 if health_file else 0.5):
                if health_file:
                    _write_health(health_file, self.health())
                if self._failed and not any(t.is_alive() for t in self._threads.values()):
                    break
        finally:
            log.info("app %s stopping", self.app.name)
            self.stop()
            if server is not None:
                server.shutdown()
            if health_file:
                _write_health(health_file, self.health())
        return 1 if self._failed else 0

    def __enter__(self) -> Runner:
        return self.start() if self.state == "created" else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_health(path: str, health: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({**health, "at": time.time()}, f)
    os.replace(tmp, path)  # readers never see half a file


def _serve_health(runner: Runner, port: int) -> ThreadingHTTPServer:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = render(runner.app.name, runner.loops).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)
                return
            health = runner.health()
            body = json.dumps(health).encode()
            self.send_response(200 if health["ready"] else 503)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # no access log on stderr

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


__all__ = ["Runner", "TidingsError"]
