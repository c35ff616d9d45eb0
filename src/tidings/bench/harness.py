"""The bench harness: settings, the workload registry, result lines, output.

A *workload* is a function ``fn(bench) -> Iterable[Line]``; a *line* is a
plain dict with at least ``workload``, ``engine``, ``record_bytes`` and one
of ``records_per_s`` / ``p50_ms`` + ``p99_ms`` / ``ratio`` (or ``error``).
The harness never lets a workload's failure end the run: benchmarks report,
they do not gate (CONVENTIONS.md, Tests).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..client.client import Client

Line = dict[str, Any]
WorkloadFn = Callable[["Bench"], Iterable[Line]]

# What a result is read against (DESIGN.md, Performance): shown in the table
# and carried in the JSON so a reader needs no second document.
TARGETS: dict[str, str] = {
    "log.append.batched": ">= 1,000,000 rec/s",
    "log.consume.group": ">= 2,000,000 rec/s",
    "log.append.bandwidth": "ratio >= 0.8",
    "log.e2e.latency": "p99 <= 1 ms",
    "log.backlog.flatness": "ratio >= 0.8",
    "queue.publish.batched": ">= 300,000 msg/s",
    "queue.consume.ack": ">= 300,000 msg/s",
    "queue.publish.single": "ratio >= 0.9",
    "queue.publish.concurrent": ">= 50,000 msg/s",
    "queue.backlog.flatness": "ratio >= 0.8",
}
# The embedded engine carries the targets above; PostgreSQL has its own.
POSTGRESQL_TARGETS = {"log.append.batched": ">= 150,000 rec/s"}


@dataclass(frozen=True)
class Workload:
    """A named measurement; ``peer`` workloads run only with ``--peers``."""

    name: str
    run: WorkloadFn
    peer: bool = False


@dataclass(frozen=True)
class Settings:
    """What one ``tidings bench`` run measures, and how big.

    ``url=None`` gives every tidings workload its own temporary SQLite file
    under ``workdir`` (so one workload's leftovers never slow the next).
    """

    url: str | None = None
    records: int = 1_000_000
    quick: bool = False
    peers: bool = False
    workdir: str = field(default_factory=tempfile.gettempdir)
    peer_seconds: float = 4.0
    only: tuple[str, ...] = ()

    @classmethod
    def make(
        cls, url: str | None, records: int | None, quick: bool, peers: bool, **kw: Any
    ) -> Settings:
        """Defaults sized for a real run, or for a CI smoke test with ``quick``."""
        default = 5_000 if quick else 1_000_000
        seconds = 0.5 if quick else 4.0
        return cls(url, records or default, quick, peers, peer_seconds=seconds, **kw)


def engine_name(url: str) -> str:
    """``sqlite:///x.db`` → ``tidings-sqlite``; ``postgresql://…`` → ``tidings-postgresql``;
    ``amqp://…`` → ``tidings-rabbitmq``."""
    scheme = url.split(":", 1)[0].lower()
    names = {"postgres": "postgresql", "amqp": "rabbitmq", "amqps": "rabbitmq"}
    return f"tidings-{names.get(scheme, scheme)}"


class Bench:
    """What a workload gets: settings, fresh tidings clients, a scratch
    directory on the measured disk, and baselines shared within the run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.url or "sqlite:///"
        self.engine = engine_name(self.url)
        self.baselines: dict[str, float] = {}
        # Throughput on a shared 2-core machine wobbles by ~15% run to run:
        # report the median of a few runs (and the best) rather than one.
        self.repeats = 1 if settings.quick else 3

    def size(self, full: int, quick: int) -> int:
        """A workload's size: ``full`` scaled to ``--records`` (1M = 1x)."""
        if self.settings.quick:
            return quick
        return max(1, full * self.settings.records // 1_000_000)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[str]:
        """A temporary directory on the disk the engine writes to."""
        base = self.settings.workdir
        if self.settings.url and self.settings.url.startswith("sqlite:"):
            from ..engines.sql.engine import path_from_url

            base = os.path.dirname(os.path.abspath(path_from_url(self.settings.url)[0]))
        path = tempfile.mkdtemp(prefix="tidings-bench-", dir=base)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def client(self) -> Iterator[tuple[Client, str]]:
        """A client and a fresh topic name; the topic (or the temporary
        database) is removed afterwards."""
        topic = f"bench-{uuid.uuid4().hex[:12]}"
        if self.settings.url:
            with Client(self.settings.url) as c:
                try:
                    yield c, topic
                finally:
                    with contextlib.suppress(Exception):
                        c.delete_topic(topic)
                    with contextlib.suppress(Exception):
                        c.delete_queue(topic)  # on a server (amqp://) nothing else removes it
            return
        with self.scratch() as d, Client(f"sqlite:///{d}/bench.db") as c:
            yield c, topic

    def line(self, workload: str, record_bytes: int, **values: Any) -> Line:
        """A result line for this run's tidings engine."""
        return line(workload, self.engine, record_bytes, **values)


def line(workload: str, engine: str, record_bytes: int, **values: Any) -> Line:
    """One result; floats are rounded so the JSON stays readable."""
    out: Line = {"workload": workload, "engine": engine, "record_bytes": record_bytes}
    for k, v in values.items():
        out[k] = round(v, 3 if abs(v) < 100 else 1) if isinstance(v, float) else v
    target = target_for(workload, engine)
    if target and "error" not in out and "versus" not in out:
        out.setdefault("target", target)
    return out


def target_for(workload: str, engine: str) -> str | None:
    """DESIGN.md's target for this engine, if it sets one."""
    if engine == "tidings-postgresql":
        return POSTGRESQL_TARGETS.get(workload)
    return TARGETS.get(workload) if engine in ("tidings-sqlite", "tidings-memory") else None


def rate(count: int, seconds: float) -> float:
    """Per second, safe against a zero-length clock interval."""
    return count / max(seconds, 1e-9)


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds``."""

    seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0

    @property
    def elapsed(self) -> float:
        """Seconds so far, while it runs."""
        return time.perf_counter() - self._t0


def run_workloads(bench: Bench, workloads: Iterable[Workload], out: Output) -> list[Line]:
    """Run each selected workload, emitting its lines as they come."""
    lines: list[Line] = []
    for w in workloads:
        if w.peer and not bench.settings.peers:
            continue
        if bench.settings.only and not any(w.name.startswith(o) for o in bench.settings.only):
            continue
        for ln in _guarded(bench, w):
            out.emit(ln)
            lines.append(ln)
    return lines


def _guarded(bench: Bench, w: Workload) -> Iterator[Line]:
    try:
        yield from w.run(bench)
    except Exception as exc:  # a broken workload is reported, the run goes on
        if os.environ.get("TIDINGS_BENCH_DEBUG"):
            traceback.print_exc()
        yield line(w.name, bench.engine, 0, error=f"{type(exc).__name__}: {exc}")


def ratio_lines(lines: list[Line], base_engine: str, workloads: Iterable[str]) -> Iterator[Line]:
    """``tidings / peer`` for each peer measured on the same workload."""
    for name in workloads:
        ours = _rate_of(lines, name, base_engine)
        if ours is None:
            continue
        for ln in lines:
            peer = ln.get("engine", "")
            if (
                ln["workload"] == name
                and not peer.startswith("tidings-")
                and ln.get("records_per_s")
            ):
                yield line(
                    name,
                    base_engine,
                    ln["record_bytes"],
                    versus=peer,
                    ratio=ours / ln["records_per_s"],
                )


def _rate_of(lines: list[Line], workload: str, engine: str) -> float | None:
    for ln in lines:
        if ln["workload"] == workload and ln["engine"] == engine and ln.get("records_per_s"):
            return float(ln["records_per_s"])
    return None


class Output:
    """JSON lines for scripts, or an aligned table for people (printed
    row by row, so a long run shows progress)."""

    _COLUMNS = (("workload", 26), ("engine", 20), ("bytes", 6), ("result", 30), ("target", 20))

    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self._header = False

    def emit(self, ln: Line) -> None:
        if self.as_json:
            self.stream.write(json.dumps(ln, separators=(",", ":")) + "\n")
        else:
            self._row(ln)
        self.stream.flush()

    def _row(self, ln: Line) -> None:
        if not self._header:
            self._write([name for name, _ in self._COLUMNS] + ["details"])
            self._header = True
        cells = [ln["workload"], ln["engine"], str(ln["record_bytes"]), describe(ln)]
        cells.append(ln.get("target", ""))
        self._write([*cells, _details(ln)])

    def _write(self, cells: list[str]) -> None:
        widths = [w for _, w in self._COLUMNS] + [0]
        self.stream.write("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() + "\n")


_SHOWN = {"workload", "engine", "record_bytes", "records_per_s", "p50_ms", "p99_ms", "ratio"}


def describe(ln: Line) -> str:
    """The headline figure of a line, for people."""
    if "error" in ln:
        return "error"
    if "ratio" in ln:
        vs = f" vs {ln['versus']}" if "versus" in ln else ""
        return f"ratio {ln['ratio']:.2f}{vs}"
    if "p99_ms" in ln:
        return f"p50 {ln['p50_ms']:.3f} ms  p99 {ln['p99_ms']:.3f} ms"
    return f"{ln['records_per_s']:,.0f} /s"


def _details(ln: Line) -> str:
    rest = {k: v for k, v in ln.items() if k not in _SHOWN | {"target", "versus"}}
    return " ".join(f"{k}={v}" for k, v in rest.items())


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
