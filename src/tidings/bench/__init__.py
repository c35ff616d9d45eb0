"""``tidings bench``: tidings measured against the machine and its peers.

Run it as ``tidings bench log [--peers] [--json]`` or from Python::

    from tidings.bench import Settings, run_log

    lines = run_log(Settings.make(None, 10_000, quick=False, peers=False), as_json=True)

Modules: :mod:`.harness` (settings, registry, lines, output), :mod:`.disk`
(fdatasync rate, sequential bandwidth), :mod:`.log` and :mod:`.latency`
(tidings log workloads), :mod:`.queue` (queue registry), :mod:`.peers`
(RabbitMQ, NATS JetStream, Redis Streams, PostgreSQL, persist-queue,
litequeue).
"""

from __future__ import annotations

from collections.abc import Iterable

from .harness import Bench, Line, Output, Settings, Workload, ratio_lines, run_workloads


def _run(
    settings: Settings, workloads: Iterable[Workload], compared: tuple[str, ...], as_json: bool
) -> list[Line]:
    bench = Bench(settings)
    out = Output(as_json)
    lines = run_workloads(bench, workloads, out)
    for ln in ratio_lines(lines, bench.engine, compared):
        out.emit(ln)
        lines.append(ln)
    return lines


def run_log(settings: Settings, as_json: bool = False) -> list[Line]:
    """Every log workload (and the peers with ``settings.peers``); prints
    each line as it comes and returns them all."""
    from . import log

    return _run(settings, log.workloads(), log.COMPARED, as_json)


def run_queue(settings: Settings, as_json: bool = False) -> list[Line]:
    """The queue workloads registered so far, and the queue peers."""
    from . import queue

    return _run(settings, queue.workloads(), queue.RATIOS, as_json)


__all__ = ["Bench", "Line", "Settings", "Workload", "run_log", "run_queue"]
