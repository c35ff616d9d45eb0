"""tidings' own queue workloads (256-byte bodies, durable), registered in
``queue.TIDINGS_WORKLOADS``."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import threading
from collections.abc import Iterator

from ..client.aio import AsyncClient
from ..client.client import Client
from .harness import Bench, Line, Stopwatch, Workload, rate

BODY = os.urandom(128).hex().encode()  # 256 bytes
BATCH = 100
THREADS = 8


def _fill(client: Client, queue: str, count: int, batch: int = 1000) -> None:
    bodies = [BODY] * batch
    for start in range(0, count, batch):
        client.publish_batch(queue, bodies[: min(batch, count - start)])


def _drain(client: Client, queue: str, count: int) -> int:
    seen = 0
    while seen < count:
        got = client.get(queue, BATCH)
        if not got:
            break
        client.ack(got)
        seen += len(got)
    return seen


def publish_batched(bench: Bench) -> Iterator[Line]:
    """``queue.publish.batched``: ``publish_batch`` of 100."""
    count = bench.size(300_000, 2_000)
    rates = []
    for _ in range(bench.repeats):
        with bench.client() as (client, queue):
            client.declare_queue(queue)
            with Stopwatch() as sw:
                _fill(client, queue, count, BATCH)
            rates.append(rate(count, sw.seconds))
    yield bench.line(
        "queue.publish.batched",
        len(BODY),
        records_per_s=statistics.median(rates),
        best_per_s=max(rates),
        runs=len(rates),
        messages=count,
        batch=BATCH,
    )


def consume_ack(bench: Bench) -> Iterator[Line]:
    """``queue.consume.ack``: ``get`` of 100, then ``ack`` of the 100."""
    count = bench.size(300_000, 2_000)
    rates = []
    for _ in range(bench.repeats):
        with bench.client() as (client, queue):
            client.declare_queue(queue)
            _fill(client, queue, count)
            with Stopwatch() as sw:
                seen = _drain(client, queue, count)
            rates.append(rate(seen, sw.seconds))
    yield bench.line(
        "queue.consume.ack",
        len(BODY),
        records_per_s=statistics.median(rates),
        best_per_s=max(rates),
        runs=len(rates),
        messages=count,
        batch=BATCH,
    )


def publish_single(bench: Bench) -> Iterator[Line]:
    """``queue.publish.single``: one durable commit per message, one
    publisher, as a ratio of the disk's fdatasync rate."""
    count = bench.size(5_000, 200)
    with bench.client() as (client, queue):
        client.declare_queue(queue)
        with Stopwatch() as sw:
            for _ in range(count):
                client.publish(queue, BODY)
    ours = rate(count, sw.seconds)
    disk = bench.baselines.get("fdatasync_per_s")
    values: dict[str, float] = {"records_per_s": ours}
    if disk:
        values["ratio"] = ours / disk
        values["fdatasync_per_s"] = disk
    yield bench.line("queue.publish.single", len(BODY), **values)


def publish_single_async(bench: Bench) -> Iterator[Line]:
    """``queue.publish.single.async``: as ``queue.publish.single``, from an
    AsyncClient (an engine on an async driver runs on its loop: each publish
    is awaited there, with no thread hop)."""
    count = bench.size(5_000, 200)
    with bench.client() as (client, queue):
        client.declare_queue(queue)
        seconds = asyncio.run(_publish_one_by_one(client.url, queue, count))
    yield bench.line("queue.publish.single.async", len(BODY), records_per_s=rate(count, seconds))


async def _publish_one_by_one(url: str, queue: str, count: int) -> float:
    async with AsyncClient(url) as client:
        await client.publish(queue, BODY)  # opened and warm before the clock starts
        with Stopwatch() as sw:
            for _ in range(count):
                await client.publish(queue, BODY)
    return sw.seconds


def publish_concurrent(bench: Bench) -> Iterator[Line]:
    """``queue.publish.concurrent``: 8 threads, each waiting for its own
    confirm; the engine groups their commits."""
    per = bench.size(4_000, 100)
    with bench.client() as (client, queue):
        client.declare_queue(queue)

        def work() -> None:
            for _ in range(per):
                client.publish(queue, BODY)

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        with Stopwatch() as sw:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        total = client.queue_stats(queue).ready
    yield bench.line(
        "queue.publish.concurrent",
        len(BODY),
        records_per_s=rate(total, sw.seconds),
        threads=THREADS,
    )
    if bench.url.startswith("sqlite:") or not bench.settings.url:
        yield from _concurrent_processes(bench, per)


def _publish_process(url: str, queue: str, count: int) -> None:
    with Client(url) as client:
        for _ in range(count):
            client.publish(queue, BODY)


def _concurrent_processes(bench: Bench, per: int) -> Iterator[Line]:
    """The same with 8 publisher processes on one file (the SQLite lock is
    shared between processes, so commits group less)."""
    with bench.scratch() as d:
        url = f"sqlite:///{d}/procs.db"
        with Client(url) as client:
            client.declare_queue("procs")
            ctx = multiprocessing.get_context("spawn")
            procs = [
                ctx.Process(target=_publish_process, args=(url, "procs", per))
                for _ in range(THREADS)
            ]
            with Stopwatch() as sw:
                for p in procs:
                    p.start()
                for p in procs:
                    p.join()
            total = client.queue_stats("procs").ready
    yield bench.line(
        "queue.publish.concurrent.processes",
        len(BODY),
        records_per_s=rate(total, sw.seconds),
        processes=THREADS,
    )


def backlog_flatness(bench: Bench) -> Iterator[Line]:
    """``queue.backlog.flatness``: claim+ack throughput of the first 5,000
    messages with 1M queued, over the same with 5,000 queued."""
    big = bench.size(1_000_000, 20_000)
    window = min(5_000, big)
    small = _window_rate(bench, window, window)
    large = _window_rate(bench, big, window)
    yield bench.line(
        "queue.backlog.flatness",
        len(BODY),
        ratio=large / small,
        backlog=big,
        records_per_s_backlog=large,
        records_per_s_small=small,
    )


def _window_rate(bench: Bench, backlog: int, window: int) -> float:
    with bench.client() as (client, queue):
        client.declare_queue(queue)
        _fill(client, queue, backlog, 5_000)
        with Stopwatch() as sw:
            seen = _drain(client, queue, window)
    return rate(seen, sw.seconds)


WORKLOADS = [
    Workload("queue.publish.batched", publish_batched),
    Workload("queue.consume.ack", consume_ack),
    Workload("queue.publish.single", publish_single),
    Workload("queue.publish.single.async", publish_single_async),
    Workload("queue.publish.concurrent", publish_concurrent),
    Workload("queue.backlog.flatness", backlog_flatness),
]
