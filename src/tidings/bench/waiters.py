"""``log.idle_waiters``: what idle consumers of *other* topics cost a producer.

Idle consumer processes each wait on their own topic of the same database
while this process appends to another one: one-record commits, then
1,000-record batches, then the end-to-end latency of ``log.e2e.latency``.
Each line also gives the CPU the idle processes burned per commit. With
targeted wake-ups every figure should match the line without idle waiters.

Run as ``python -m tidings.bench.waiters URL TOPIC GROUP`` for one idle
consumer (``GROUP`` ``-`` for none).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType

from ..client.client import Client
from ..errors import UnsupportedFeature
from .harness import Bench, Line, Stopwatch, percentile, rate
from .latency import _receive, _spawn

RECORD = b"r" * 100
BATCH = 1_000
IDLE = 50
KINDS = ((0, None), (IDLE, "plain"), (IDLE, "group"))


def idle_waiters(bench: Bench) -> Iterator[Line]:
    """One line per setting: no idle waiters, 50 plain consumers, 50 group members."""
    for count, kind in KINDS:
        yield _measure(bench, count if not bench.settings.quick else min(count, 4), kind)


def _measure(bench: Bench, idle: int, kind: str | None) -> Line:
    with bench.client() as (client, topic):
        if not client.features.supports("multi_process"):
            raise UnsupportedFeature(f"{bench.engine} is private to one process")
        client.create_topic(topic)
        children = _start_idle(client, topic, idle, kind)
        try:
            figures = _figures(bench, client, topic, children)
        finally:
            _stop(children)
    return bench.line(
        "log.idle_waiters", len(RECORD), idle_waiters=idle, waiter_kind=kind or "-", **figures
    )


def _figures(
    bench: Bench, client: Client, topic: str, children: list[subprocess.Popen[bytes]]
) -> dict[str, float]:
    seconds = 0.3 if bench.settings.quick else 2.0
    cpu0 = _cpu_seconds(children)
    with Stopwatch() as sw:
        commits = _one_record_commits(client, topic, seconds)
        cpu1 = _cpu_seconds(children)
        batched = _batched_rate(client, topic, bench.size(200_000, 5_000))
        p50, p99 = _latency(client, topic, bench.size(3_000, 300))
    out = {"commits_per_s": commits, "batched_records_per_s": batched, "p50_ms": p50, "p99_ms": p99}
    if children:  # CPU of the idle processes, in µs per commit each and in all
        out["idle_cpu_us_per_commit"] = (cpu1 - cpu0) / len(children) / (commits * seconds) * 1e6
        out["idle_cpu_pct"] = (_cpu_seconds(children) - cpu0) / sw.seconds * 100
    return out


def _one_record_commits(client: Client, topic: str, seconds: float) -> float:
    """Durable one-record appends per second (each its own commit)."""
    producer = client.producer()
    done = 0
    with Stopwatch() as sw:
        while sw.elapsed < seconds:
            producer.send_batch(topic, [RECORD])
            done += 1
    return rate(done, sw.seconds)


def _batched_rate(client: Client, topic: str, count: int) -> float:
    producer = client.producer()
    values = [RECORD] * BATCH
    with Stopwatch() as sw:
        for start in range(0, count, BATCH):
            producer.send_batch(topic, values[: min(BATCH, count - start)])
    return rate(count, sw.seconds)


def _latency(client: Client, topic: str, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of the paced producer process of ``log.e2e.latency``."""
    with client.consumer(topic, group="bench-e2e", start="end") as consumer:
        consumer.poll(timeout=0)  # join before the producer starts
        child = _spawn(client.url, topic, count)
        try:
            samples = _receive(consumer, count + 1)
        finally:
            child.wait(timeout=60)
    ms = sorted(samples[min(200, count // 10) :])
    return percentile(ms, 50), percentile(ms, 99)


def _start_idle(
    client: Client, topic: str, idle: int, kind: str | None
) -> list[subprocess.Popen[bytes]]:
    children = []
    for i in range(idle):
        name = f"{topic}-idle-{i}"
        client.create_topic(name)
        group = f"{name}-g" if kind == "group" else "-"
        args = [sys.executable, "-m", "tidings.bench.waiters", client.url, name, group]
        children.append(subprocess.Popen(args, stdout=subprocess.PIPE))
    for child in children:  # each prints a line once it waits
        assert child.stdout is not None
        child.stdout.readline()
    return children


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


def _cpu_seconds(children: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU of the processes so far (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in children:
        try:
            with open(f"/proc/{child.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def wait_idle(url: str, topic: str, group: str | None) -> None:
    """An idle consumer: waits on ``topic`` until terminated."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    with Client(url) as client, client.consumer(topic, group=group, start="end") as consumer:
        consumer.poll(timeout=0)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            consumer.poll(timeout=10.0)


if __name__ == "__main__":
    wait_idle(sys.argv[1], sys.argv[2], None if sys.argv[3] == "-" else sys.argv[3])
