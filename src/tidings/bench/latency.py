"""``log.e2e.latency``: a paced producer process, a consumer in this one.

The producer stamps each record with ``time.monotonic_ns()`` (CLOCK_MONOTONIC
is one clock for every process on a Linux host); the consumer subtracts it
from its own clock when the record arrives. Latency therefore covers the
whole path: send, durable append (fsync), cross-process wake-up, fetch.

Run as ``python -m tidings.bench.latency URL TOPIC COUNT RATE`` for the
producer side.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Iterator

from ..client.client import Client
from ..client.consumer import Consumer
from ..errors import EngineTimeout, UnsupportedFeature
from .harness import Bench, Line, percentile

RECORD_BYTES = 100
RATE = 1_000  # records per second (DESIGN.md)
_STAMP = struct.Struct("<q")


def stamped(pad: bytes) -> bytes:
    """A record whose first 8 bytes are the send time."""
    return _STAMP.pack(time.monotonic_ns()) + pad


def produce_paced(url: str, topic: str, count: int, per_s: int) -> None:
    """Send ``count`` records at ``per_s``, each on its own schedule slot
    (sleeping, not spinning, between them)."""
    pad = b"p" * (RECORD_BYTES - _STAMP.size)
    with Client(url) as client, client.producer() as producer:
        producer.send_batch(topic, [b"warm-up"])  # open files before the clock
        start = time.monotonic()
        for i in range(count):
            delay = start + i / per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, stamped(pad))
        producer.flush()


def e2e_latency(bench: Bench) -> Iterator[Line]:
    """p50/p99 of receive time − send time at 1,000 records/s."""
    count = bench.size(5_000, 300)
    warmup = min(200, count // 10)
    with bench.client() as (client, topic):
        if not client.features.supports("multi_process"):
            raise UnsupportedFeature(f"{bench.engine} is private to one process")
        client.create_topic(topic)
        with client.consumer(topic, group="bench", start="beginning") as consumer:
            consumer.poll(timeout=0)  # join before the producer starts
            child = _spawn(client.url, topic, count)
            try:
                samples = _receive(consumer, count + 1)
            finally:
                child.wait(timeout=30)
    ms = sorted(samples[warmup:])
    yield bench.line(
        "log.e2e.latency",
        RECORD_BYTES,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
        records=len(ms),
        per_s=RATE,
    )


def _spawn(url: str, topic: str, count: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tidings.bench.latency", url, topic, str(count), str(RATE)]
    return subprocess.Popen(args)


def _receive(consumer: Consumer, count: int) -> list[float]:
    """Latencies in ms of the stamped records (the warm-up record is skipped)."""
    out: list[float] = []
    seen = 0
    while seen < count:
        got = consumer.poll(timeout=10.0)
        now = time.monotonic_ns()
        if not got:
            raise EngineTimeout(f"only {seen} of {count} records arrived")
        seen += len(got)
        out.extend(
            (now - _STAMP.unpack_from(r.value)[0]) / 1e6
            for r in got
            if r.value and len(r.value) == RECORD_BYTES
        )
    return out


if __name__ == "__main__":
    produce_paced(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
