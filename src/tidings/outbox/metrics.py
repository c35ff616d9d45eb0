"""Outbox metrics in the Prometheus text format, without a dependency.

Per outbox and shard: ``tidings_outbox_pending`` (committed events the
destination has not acknowledged), ``tidings_outbox_lag_seconds`` (age of
the oldest of them), ``tidings_outbox_forwarded_total``,
``tidings_outbox_failed_total`` (failed forwarding attempts) and
``tidings_outbox_lease_held`` (1 while a relay holds the shard, labelled
with its owner). Served at ``/metrics`` by ``tidings relay --metrics-port``;
:func:`render` gives the same text for any other exporter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .store import ShardStatus

_SERIES: tuple[tuple[str, str, Callable[[ShardStatus], float]], ...] = (
    ("pending", "gauge", lambda s: s.pending),
    ("lag_seconds", "gauge", lambda s: round(s.lag_s, 3)),
    ("forwarded_total", "counter", lambda s: s.forwarded),
    ("failed_total", "counter", lambda s: s.failed),
)


def render(statuses: list[ShardStatus]) -> str:
    """Every shard's figures as Prometheus text (see the module docstring)."""
    out: list[str] = []
    for name, kind, value in _SERIES:
        out.append(f"# TYPE tidings_outbox_{name} {kind}")
        out.extend(f"tidings_outbox_{name}{{{_labels(s)}}} {value(s)}" for s in statuses)
    out.append("# TYPE tidings_outbox_lease_held gauge")
    for s in statuses:
        owner = _escape(s.owner or "")
        held = 1 if s.owner else 0
        out.append(f'tidings_outbox_lease_held{{{_labels(s)},owner="{owner}"}} {held}')
    return "\n".join(out) + "\n"


def serve(read: Callable[[], list[ShardStatus]], port: int) -> ThreadingHTTPServer:
    """Serve ``render(read())`` at ``http://127.0.0.1:port/metrics`` from a
    daemon thread (``port=0`` picks a free one: ``server.server_port``);
    call ``server.shutdown()`` to stop. A failed read answers 503 with the
    error, so a scrape shows the relay's database is unreachable."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/metrics"):
                self._answer(404, b"see /metrics\n")
                return
            try:
                body = render(read()).encode()
            except Exception as exc:  # reported to the scraper, never fatal to the relay
                self._answer(503, f"outbox status failed: {exc}\n".encode())
                return
            self._answer(200, body)

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # no access log on stderr

    server = ThreadingHTTPServer(("127.0.0.1", port), Metrics)
    name = "tidings-outbox-metrics"
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def _labels(s: ShardStatus) -> str:
    return f'outbox="{_escape(s.outbox)}",shard="{s.shard}"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
