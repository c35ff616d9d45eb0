"""``tidings bench runtime``: the consumer runtime over a raw consume loop.

Workloads (SQLite log, 100-byte records, 1M by default): ``runtime.raw``
(``Consumer.poll`` + ``commit``, the baseline), ``runtime.batch`` (a no-op
batch handler), ``runtime.per_record`` (a no-op per-record sync handler),
``runtime.per_record.async`` (the same, ``async def``). Each runtime line
has ``records_per_s`` and ``ratio`` = its rate over the raw loop's rate
measured in the same run on the same topic, each a fresh consumer group
reading it from the beginning.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ..client.client import Client
from ..runtime import App
from ..runtime.runner import Runner
from .harness import Bench, Line, Stopwatch, Workload, rate
from .log import RECORD, _consume_once, fill

FETCH = 10_000  # records per poll, for the raw loop and the runtime alike
TARGETS = {
    "runtime.batch": "ratio >= 0.8",
    "runtime.per_record": "ratio >= 0.4",
    "runtime.per_record.async": "ratio >= 0.25",
}


def _noop_batch(payloads: list[bytes]) -> None:
    pass


def _noop(payload: bytes) -> None:
    pass


async def _anoop(payload: bytes) -> None:
    pass


HANDLERS: dict[str, tuple[Callable[..., Any], bool]] = {
    "runtime.batch": (_noop_batch, True),
    "runtime.per_record": (_noop, False),
    "runtime.per_record.async": (_anoop, False),
}


def _runtime_once(client: Client, topic: str, name: str, count: int) -> float:
    fn, batch = HANDLERS[name]
    app = App(f"bench-{uuid.uuid4().hex[:8]}")
    app.handler(topic=topic, batch=batch, max_in_flight=FETCH, name="h")(fn)
    runner = Runner(app, client=client)
    with Stopwatch() as sw:
        runner.start()
        loop = runner.loops["h"]
        while loop.handled < count:
            time.sleep(0.002)
            if runner.health()["handlers"]["h"]["error"]:
                raise RuntimeError(str(runner.health()))
    runner.stop()
    return rate(count, sw.seconds)


def runtime(bench: Bench) -> Iterator[Line]:
    """The raw loop, then each handler kind, on one filled topic. The
    machine is shared and its speed drifts, so each repeat measures the raw
    loop and every handler kind back to back, and a ratio is the median of
    the per-repeat ratios."""
    count = bench.size(1_000_000, 20_000)
    rates: dict[str, list[float]] = {name: [] for name in ("runtime.raw", *HANDLERS)}
    with bench.client() as (client, topic):
        client.create_topic(topic)
        fill(client, topic, count)
        for i in range(bench.repeats):
            rates["runtime.raw"].append(_consume_once(client, topic, f"raw-{i}", count))
            for name in HANDLERS:
                rates[name].append(_runtime_once(client, topic, name, count))
    raw = rates["runtime.raw"]
    yield bench.line(
        "runtime.raw", len(RECORD), records_per_s=statistics.median(raw), best_per_s=max(raw),
        runs=len(raw), records=count,
    )  # fmt: skip
    for name in HANDLERS:
        ratios = [ours / base for ours, base in zip(rates[name], raw)]
        yield bench.line(
            name, len(RECORD), records_per_s=statistics.median(rates[name]),
            ratio=statistics.median(ratios), best_per_s=max(rates[name]), runs=len(ratios),
            records=count, target=TARGETS[name],
        )  # fmt: skip


WORKLOADS = [Workload("runtime", runtime)]


def run_runtime(settings: Any, as_json: bool = False) -> list[Line]:
    """Every runtime workload; prints each line as it comes and returns them."""
    from .harness import Output, run_workloads

    return run_workloads(Bench(settings), WORKLOADS, Output(as_json))
