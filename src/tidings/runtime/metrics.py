"""Runtime metrics in the Prometheus text format, without a dependency.

Per handler: ``tidings_runtime_handled_total`` (messages done with:
succeeded or parked), ``..._failed_rounds_total`` (delivery rounds that
failed after their immediate retries), ``..._retries_total`` (immediate
retries), ``..._parked_total``, ``..._paused_partitions``, ``..._lag``
(records not yet handled, topic handlers) and the histogram
``..._fetch_seconds`` of the time one fetch's messages took to handle
(per fetch, not per message: the per-record path stays free of clock
reads). Served at ``/metrics`` on ``tidings run --health-port``.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


class HandlerMetrics:
    """Counters and the fetch-time histogram of one handler (thread-safe)."""

    def __init__(self) -> None:
        self.failed_rounds = 0
        self.retries = 0
        self.parked = 0
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sum += seconds

    def histogram(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._buckets), self._sum


def render(app: str, loops: dict[str, Any]) -> str:
    """Every handler's metrics as Prometheus text."""
    out: list[str] = []
    series: dict[str, list[str]] = {}
    for name, loop in loops.items():
        labels = f'app="{app}",handler="{name}"'
        m: HandlerMetrics = loop.life.metrics
        for metric, value in (
            ("handled_total", loop.handled), ("failed_rounds_total", m.failed_rounds),
            ("retries_total", m.retries), ("parked_total", m.parked),
            ("paused_partitions", _paused(loop)), ("lag", _lag(loop)),
        ):  # fmt: skip
            if value is not None:
                series.setdefault(metric, []).append(
                    f"tidings_runtime_{metric}{{{labels}}} {value}"
                )
        series.setdefault("fetch_seconds", []).extend(_histogram(labels, m))
    for metric, lines in series.items():
        kind = (
            "histogram"
            if metric == "fetch_seconds"
            else "counter"
            if metric.endswith("_total")
            else "gauge"
        )
        out.append(f"# TYPE tidings_runtime_{metric} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n"


def _histogram(labels: str, m: HandlerMetrics) -> list[str]:
    buckets, total = m.histogram()
    lines, running = [], 0
    for bound, count in zip((*BUCKETS, float("inf")), buckets):
        running += count
        le = "+Inf" if bound == float("inf") else repr(bound)
        lines.append(f'tidings_runtime_fetch_seconds_bucket{{{labels},le="{le}"}} {running}')
    lines.append(f"tidings_runtime_fetch_seconds_sum{{{labels}}} {total:.6f}")
    lines.append(f"tidings_runtime_fetch_seconds_count{{{labels}}} {running}")
    return lines


def _paused(loop: Any) -> int | None:
    parts = getattr(loop, "parts", None)
    if parts is None:
        return None
    return sum(1 for p in list(parts.values()) if p.resume_at)


def _lag(loop: Any) -> int | None:
    """Records between each owned partition's handled prefix and its end."""
    parts = getattr(loop, "parts", None)
    if parts is None:
        return None
    infos = loop.engine.log.describe_partitions(loop.topic)  # engines are thread-safe
    ends: dict[int, int] = {i.partition: i.next_offset for i in infos}
    return int(
        sum(max(0, ends.get(tp.partition, p.next) - p.next) for tp, p in list(parts.items()))
    )
