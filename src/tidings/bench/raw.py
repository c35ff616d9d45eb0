"""Raw clients beside tidings on the same server (issue 12): with ``--url
amqp://…``, each compared queue workload is followed by ``raw-aio-pika``
doing the same work, each compared log workload by ``raw-rstream``, with the
same sizes and repeats, so the ``ratio`` lines compare like with like in one
run. On other URLs these workloads yield nothing.

The raw peers' modules (and drivers) are imported only when they run: a
missing driver is an ``error`` line for that peer.
"""

from __future__ import annotations

import importlib
import statistics
from collections.abc import Callable, Iterator
from typing import Any

from .harness import Bench, Line, Workload, line, rate

AIO_PIKA, RSTREAM = "raw-aio-pika", "raw-rstream"
QUEUE_BODY = b"q" * 256
LOG_RECORD = b"r" * 100


def on_amqp(bench: Bench) -> bool:
    return bench.url.split(":", 1)[0].lower() in ("amqp", "amqps")


def _median_line(
    bench: Bench, name: str, engine: str, record_bytes: int, once: Callable[[], tuple[int, float]],
    **extra: Any,
) -> Iterator[Line]:
    """``once`` run ``bench.repeats`` times; the median rate, as tidings reports."""
    if not on_amqp(bench):
        return
    try:
        runs = [once() for _ in range(bench.repeats)]
    except Exception as exc:  # the peer's driver or service failed: a result too
        yield line(name, engine, record_bytes, error=f"{type(exc).__name__}: {exc}")
        return
    rates = [rate(n, s) for n, s in runs]
    yield line(
        name, engine, record_bytes,
        records_per_s=statistics.median(rates), best_per_s=max(rates), runs=len(rates),
        messages=runs[0][0], **extra,
    )


def _pika() -> Any:
    return importlib.import_module(f"{__package__}.peers.raw_aio_pika")


def _rstream() -> Any:
    return importlib.import_module(f"{__package__}.peers.raw_rstream")


# ---- queue: raw aio-pika ------------------------------------------------------
def queue_publish_batched(bench: Bench) -> Iterator[Line]:
    count, url = bench.size(300_000, 2_000), bench.url
    yield from _median_line(
        bench, "queue.publish.batched", AIO_PIKA, len(QUEUE_BODY),
        lambda: _pika().run(url, _pika().batched(QUEUE_BODY, count, 100)), batch=100,
    )


def queue_consume_ack(bench: Bench) -> Iterator[Line]:
    count, url = bench.size(300_000, 2_000), bench.url
    yield from _median_line(
        bench, "queue.consume.ack", AIO_PIKA, len(QUEUE_BODY),
        lambda: _pika().run(url, _pika().consumed(QUEUE_BODY, count, 100)), batch=100,
    )


def queue_publish_single(bench: Bench) -> Iterator[Line]:
    count, url = bench.size(5_000, 200), bench.url
    yield from _median_line(
        bench, "queue.publish.single", AIO_PIKA, len(QUEUE_BODY),
        lambda: _pika().run(url, _pika().single(QUEUE_BODY, count)),
    )


# ---- log: raw rstream ---------------------------------------------------------
def log_append_batched(bench: Bench) -> Iterator[Line]:
    count, url = bench.size(1_000_000, 5_000), bench.url
    yield from _median_line(
        bench, "log.append.batched", RSTREAM, len(LOG_RECORD),
        lambda: _rstream().run(url, _rstream().appended(LOG_RECORD, count, 1_000)), batch=1_000,
    )


def log_consume_group(bench: Bench) -> Iterator[Line]:
    count, url = bench.size(1_000_000, 5_000), bench.url
    yield from _median_line(
        bench, "log.consume.group", RSTREAM, len(LOG_RECORD),
        lambda: _rstream().run(url, _rstream().consumed(LOG_RECORD, count, 1_000, 1)),
    )


QUEUE = {
    "queue.publish.batched": Workload("queue.publish.batched", queue_publish_batched),
    "queue.consume.ack": Workload("queue.consume.ack", queue_consume_ack),
    "queue.publish.single": Workload("queue.publish.single", queue_publish_single),
}
LOG = {
    "log.append.batched": Workload("log.append.batched", log_append_batched),
    "log.consume.group": Workload("log.consume.group", log_consume_group),
}


def beside(workloads: list[Workload], raw: dict[str, Workload]) -> list[Workload]:
    """``workloads`` with each raw one right after the tidings one of its name."""
    out: list[Workload] = []
    for w in workloads:
        out.append(w)
        if w.name in raw:
            out.append(raw[w.name])
    return out
