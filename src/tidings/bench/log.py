"""The log workloads on tidings, through the public API only.

Sizes scale with ``--records`` (default 1,000,000); ``--quick`` shrinks them
to a CI smoke test. Every topic uses the default ``fsync`` durability.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator

from ..client.client import Client
from ..client.consumer import Consumer
from ..errors import EngineTimeout
from ..message import TopicPartition
from .disk import disk_bandwidth, disk_fdatasync, process_write_bytes
from .harness import Bench, Line, Stopwatch, Workload, rate
from .latency import e2e_latency
from .peers import Peer, all_peers, measure
from .raw import LOG as RAW
from .raw import beside
from .space import retention_space
from .spread import append_spread
from .waiters import idle_waiters

RECORD = b"r" * 100  # 100-byte records (DESIGN.md, Performance)
BATCH = 1_000
WIDE_RECORD_BYTES = 256
WIDE_BATCH = 4_000  # ~1 MB per commit: bandwidth wants large sequential writes
SMALL_BACKLOG = 1_000


def fill(client: Client, topic: str, count: int, batch: int = BATCH) -> None:
    """``count`` 100-byte records, appended in batches."""
    values = [RECORD] * batch
    with client.producer() as producer:
        for start in range(0, count, batch):
            producer.send_batch(topic, values[: min(batch, count - start)])


def append_batched(bench: Bench) -> Iterator[Line]:
    """``log.append.batched``: one producer, ``send_batch`` of 1,000."""
    count = bench.size(1_000_000, 5_000)
    rates = [_append_batched_once(bench, count) for _ in range(bench.repeats)]
    yield bench.line(
        "log.append.batched",
        len(RECORD),
        records_per_s=statistics.median(rates),
        best_per_s=max(rates),
        runs=len(rates),
        records=count,
        batch=BATCH,
    )


def _append_batched_once(bench: Bench, count: int) -> float:
    with bench.client() as (client, topic):
        client.create_topic(topic)
        with Stopwatch() as sw:
            fill(client, topic, count)
    return rate(count, sw.seconds)


def append_send(bench: Bench) -> Iterator[Line]:
    """``log.append.send``: ``send`` per record (buffered), then ``flush``."""
    count = bench.size(1_000_000, 5_000)
    rates = [_append_send_once(bench, count) for _ in range(bench.repeats)]
    yield bench.line(
        "log.append.send",
        len(RECORD),
        records_per_s=statistics.median(rates),
        best_per_s=max(rates),
        runs=len(rates),
        records=count,
    )


def _append_send_once(bench: Bench, count: int) -> float:
    with bench.client() as (client, topic):
        client.create_topic(topic)
        with client.producer() as producer, Stopwatch() as sw:
            for _ in range(count):
                producer.send(topic, RECORD)
            producer.flush()
    return rate(count, sw.seconds)


def drain(consumer: Consumer, count: int) -> int:
    """Poll and commit until ``count`` records were read."""
    seen = 0
    while seen < count:
        got = consumer.poll(timeout=5.0)
        if not got:
            raise EngineTimeout(f"only {seen} of {count} records arrived")
        seen += len(got)
        consumer.commit()
    return seen


def consume_group(bench: Bench) -> Iterator[Line]:
    """``log.consume.group``: one group member, committing after every poll."""
    count = bench.size(1_000_000, 5_000)
    with bench.client() as (client, topic):
        client.create_topic(topic)
        fill(client, topic, count)
        rates = [_consume_once(client, topic, f"bench-{i}", count) for i in range(bench.repeats)]
    yield bench.line(
        "log.consume.group",
        len(RECORD),
        records_per_s=statistics.median(rates),
        best_per_s=max(rates),
        runs=len(rates),
        records=count,
    )


def _consume_once(client: Client, topic: str, group: str, count: int) -> float:
    """A fresh group reads the whole topic from the beginning."""
    consumer = client.consumer(topic, group=group, start="beginning", auto_commit=False)
    with consumer, Stopwatch() as sw:
        seen = drain(consumer, count)
    return rate(seen, sw.seconds)


def append_bandwidth(bench: Bench) -> Iterator[Line]:
    """``log.append.bandwidth``: incompressible 256-byte records in MB/s,
    over the disk's durable sequential MB/s measured just before."""
    count = bench.size(1_000_000, 5_000)
    disk, buffered = disk_bandwidth(bench, max(count * WIDE_RECORD_BYTES, 4 << 20))
    values = [os.urandom(WIDE_RECORD_BYTES) for _ in range(WIDE_BATCH)]
    with bench.client() as (client, topic):
        client.create_topic(topic)
        producer = client.producer()  # send_batch only: nothing to flush or close
        before = process_write_bytes()
        with Stopwatch() as sw:
            for start in range(0, count, WIDE_BATCH):
                producer.send_batch(topic, values[: min(WIDE_BATCH, count - start)])
        after = process_write_bytes()
    ours = rate(count * WIDE_RECORD_BYTES, sw.seconds) / 1e6
    extra: dict[str, float] = {}
    local = bench.engine == "tidings-sqlite"  # a server's writes are not ours to count
    if local and before is not None and after is not None:
        extra["write_amplification"] = (after - before) / (count * WIDE_RECORD_BYTES)
    yield bench.line(
        "log.append.bandwidth",
        WIDE_RECORD_BYTES,
        ratio=ours / disk,
        tidings_mb_per_s=ours,
        disk_mb_per_s=disk,
        disk_buffered_mb_per_s=buffered,
        records_per_s=rate(count, sw.seconds),
        batch=WIDE_BATCH,
        **extra,
    )


def backlog_flatness(bench: Bench) -> Iterator[Line]:
    """``log.backlog.flatness``: read 1,000-record windows (poll + commit)
    spread over a large backlog, over the same with a 1,000-record backlog.
    Flat means reads seek by index and never scan."""
    big = bench.size(1_000_000, 20_000)
    small_rate = _window_rate(bench, SMALL_BACKLOG)
    big_rate = _window_rate(bench, big)
    yield bench.line(
        "log.backlog.flatness",
        len(RECORD),
        ratio=big_rate / small_rate,
        backlog=big,
        records_per_s_backlog=big_rate,
        records_per_s_1k=small_rate,
    )


def _window_rate(bench: Bench, backlog: int) -> float:
    seconds = 0.3 if bench.settings.quick else 1.5
    with bench.client() as (client, topic):
        client.create_topic(topic)
        fill(client, topic, backlog)
        tp = TopicPartition(topic, 0)
        starts = [0, backlog // 2, max(0, backlog - SMALL_BACKLOG)]
        with client.consumer(topic, group="bench", auto_commit=False) as consumer:
            consumer.poll(timeout=0)  # take the assignment outside the clock
            seen, rounds = 0, 0
            with Stopwatch() as sw:
                while seen == 0 or sw.elapsed < seconds:
                    consumer.seek(tp, starts[rounds % len(starts)])
                    seen += _read_window(consumer)
                    rounds += 1
    return rate(seen, sw.seconds)


def _read_window(consumer: Consumer) -> int:
    got = consumer.poll(timeout=5.0, max_records=SMALL_BACKLOG)
    consumer.commit()
    return len(got)


COMPARED = ("log.append.batched", "log.consume.group")

TIDINGS_WORKLOADS: list[Workload] = [
    Workload("disk.fdatasync", disk_fdatasync),
    Workload("log.append.batched", append_batched),
    Workload("log.append.send", append_send),
    Workload("log.consume.group", consume_group),
    Workload("log.append.bandwidth", append_bandwidth),
    Workload("log.e2e.latency", e2e_latency),
    Workload("log.backlog.flatness", backlog_flatness),
    Workload("log.append.spread", append_spread),
    Workload("log.idle_waiters", idle_waiters),
    Workload("log.retention.space", retention_space),
]


def _peer_workload(peer: Peer) -> Workload:
    def run(bench: Bench) -> Iterator[Line]:
        assert peer.log is not None
        yield from measure(bench, peer, peer.log, COMPARED, len(RECORD))

    return Workload(f"log.peer.{peer.name}", run, peer=True)


def workloads() -> list[Workload]:
    """tidings' log workloads (each compared one followed by raw rstream on
    amqp:// URLs), then every peer that has a log form."""
    peers = [_peer_workload(p) for p in all_peers() if p.log is not None]
    return [*beside(TIDINGS_WORKLOADS, RAW), *peers]
