"""Raw clients beside tidings on the same server (issue 12): with ``--url
amqp://…``, each compared queue workload alternates, run by run, with
``raw-aio-pika`` doing the same work, each compared log workload with
``raw-rstream``, with the same sizes and repeats, so the ``ratio`` lines
compare like with like under the same load. On other URLs the tidings
workloads run alone, as before.

The raw peers' modules (and drivers) are imported only when they run: a
missing driver is an ``error`` line for that peer.
"""

from __future__ import annotations

import copy
import importlib
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .harness import Bench, Line, Workload, line, rate

AIO_PIKA, RSTREAM = "raw-aio-pika", "raw-rstream"
QUEUE_BODY = b"q" * 256
LOG_RECORD = b"r" * 100


def on_amqp(bench: Bench) -> bool:
    return bench.url.split(":", 1)[0].lower() in ("amqp", "amqps")


Once = Callable[[], tuple[int, float]]


@dataclass(frozen=True)
class RawPeer:
    """A raw client's form of one workload: ``make(bench)`` gives one timed
    run, returning (records, seconds)."""

    engine: str
    record_bytes: int
    make: Callable[[Bench], Once]
    extra: dict[str, Any] = field(default_factory=dict)


def _alternating(ours: Workload, peer: RawPeer) -> Callable[[Bench], Iterator[Line]]:
    """On amqp:// URLs: tidings' workload and the raw client's, one run each
    in turn, ``bench.repeats`` times (the shared machine's load drifts; runs
    side by side see the same drift); the medians. Elsewhere: ours alone."""

    def run(bench: Bench) -> Iterator[Line]:
        if not on_amqp(bench):
            yield from ours.run(bench)
            return
        single = copy.copy(bench)
        single.repeats = 1
        once = peer.make(bench)
        our_runs: list[list[Line]] = []
        rates: list[tuple[int, float]] = []
        errors: dict[str, Line] = {}
        for _ in range(bench.repeats):
            if ours.name not in errors:
                our_runs.append(_ours_once(single, ours, errors))
            if peer.engine not in errors:
                _peer_once(once, peer, ours.name, rates, errors)
        yield from _merged(our_runs) if ours.name not in errors else [errors[ours.name]]
        if peer.engine in errors:
            yield errors[peer.engine]
        else:
            yield _peer_line(ours.name, peer, rates)

    return run


def _ours_once(single: Bench, ours: Workload, errors: dict[str, Line]) -> list[Line]:
    try:
        lines = list(ours.run(single))
    except Exception as exc:  # reported as the harness would, the raw client still runs
        lines = [line(ours.name, single.engine, 0, error=f"{type(exc).__name__}: {exc}")]
    if any("error" in ln for ln in lines):
        errors[ours.name] = next(ln for ln in lines if "error" in ln)
    return lines


def _peer_once(
    once: Once, peer: RawPeer, name: str, rates: list[tuple[int, float]], errors: dict[str, Line]
) -> None:
    try:
        rates.append(once())
    except Exception as exc:  # the peer's driver or service failed: a result too
        errors[peer.engine] = line(
            name, peer.engine, peer.record_bytes, error=f"{type(exc).__name__}: {exc}"
        )


def _merged(runs: list[list[Line]]) -> Iterator[Line]:
    """Each of ours' lines, its rate the median over the runs."""
    for i, first in enumerate(runs[0]):
        same = [r[i] for r in runs if i < len(r)]
        got = [float(ln["records_per_s"]) for ln in same if ln.get("records_per_s")]
        if not got:
            yield first
            continue
        merged = dict(first)
        merged["records_per_s"] = round(statistics.median(got), 1)
        merged["best_per_s"] = round(max(got), 1)
        merged["runs"] = len(got)
        if "fdatasync_per_s" in first and "ratio" in first:
            merged["ratio"] = round(merged["records_per_s"] / first["fdatasync_per_s"], 3)
        yield merged


def _peer_line(name: str, peer: RawPeer, runs: list[tuple[int, float]]) -> Line:
    rates = [rate(n, s) for n, s in runs]
    return line(
        name, peer.engine, peer.record_bytes,
        records_per_s=statistics.median(rates), best_per_s=max(rates), runs=len(rates),
        messages=runs[0][0], **peer.extra,
    )


def _pika() -> Any:
    return importlib.import_module(f"{__package__}.peers.raw_aio_pika")


def _rstream() -> Any:
    return importlib.import_module(f"{__package__}.peers.raw_rstream")


# ---- queue: raw aio-pika ------------------------------------------------------
def _queue_publish_batched(bench: Bench) -> Once:
    count, url = bench.size(300_000, 2_000), bench.url
    return lambda: _pika().run(url, _pika().batched(QUEUE_BODY, count, 100))


def _queue_consume_ack(bench: Bench) -> Once:
    count, url = bench.size(300_000, 2_000), bench.url
    return lambda: _pika().run(url, _pika().consumed(QUEUE_BODY, count, 100))


def _queue_publish_single(bench: Bench) -> Once:
    count, url = bench.size(5_000, 200), bench.url
    return lambda: _pika().run(url, _pika().single(QUEUE_BODY, count))


# ---- log: raw rstream ---------------------------------------------------------
def _log_append_batched(bench: Bench) -> Once:
    count, url = bench.size(1_000_000, 5_000), bench.url
    return lambda: _rstream().run(url, _rstream().appended(LOG_RECORD, count, 1_000))


def _log_consume_group(bench: Bench) -> Once:
    count, url = bench.size(1_000_000, 5_000), bench.url
    return lambda: _rstream().run(url, _rstream().consumed(LOG_RECORD, count, 1_000, 1))


QUEUE = {
    "queue.publish.batched": RawPeer(AIO_PIKA, 256, _queue_publish_batched, {"batch": 100}),
    "queue.consume.ack": RawPeer(AIO_PIKA, 256, _queue_consume_ack, {"batch": 100}),
    "queue.publish.single": RawPeer(AIO_PIKA, 256, _queue_publish_single),
    "queue.publish.single.async": RawPeer(AIO_PIKA, 256, _queue_publish_single),
}
LOG = {
    "log.append.batched": RawPeer(RSTREAM, 100, _log_append_batched, {"batch": 1_000}),
    "log.consume.group": RawPeer(RSTREAM, 100, _log_consume_group),
}


def beside(workloads: list[Workload], raw: dict[str, RawPeer]) -> list[Workload]:
    """``workloads``, those with a raw form alternating with it on amqp:// URLs."""
    return [
        Workload(w.name, _alternating(w, raw[w.name]), w.peer) if w.name in raw else w
        for w in workloads
    ]
