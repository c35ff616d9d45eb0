"""The machine's own limits, measured in the same run as the workloads.

Ratios against these (``log.append.bandwidth``, ``queue.publish.single``)
tell how close tidings gets to the disk, whatever the disk is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from .harness import Bench, Line, Stopwatch, rate

CHUNK = 4 << 20  # 4 MB writes: large enough that per-call cost vanishes
SMALL_WRITE = 256  # one small record per durable commit


def sequential_write(
    directory: str, total_bytes: int, chunk: int = CHUNK, sync_each: bool = True
) -> float:
    """Sequential write bandwidth in MB/s (10**6 bytes): ``total_bytes`` in
    ``chunk``-sized writes, each followed by ``fdatasync`` (as a log that
    acknowledges every batch must), or with ``sync_each=False`` one
    ``fdatasync`` at the end (the disk's best case, write-back allowed)."""
    path = os.path.join(directory, "seqwrite.bin")
    block = os.urandom(chunk)  # incompressible, like the workload's records
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with Stopwatch() as sw:
            while written < total_bytes:
                written += os.write(fd, block)
                if sync_each:
                    os.fdatasync(fd)
            os.fdatasync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return rate(written, sw.seconds) / 1e6


def fdatasync_rate(directory: str, count: int) -> float:
    """Small appends, each made durable on its own: the most durable commits
    per second this disk allows one writer."""
    path = os.path.join(directory, "fdatasync.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    payload = b"x" * SMALL_WRITE
    try:
        os.write(fd, payload)  # allocate the first block outside the clock
        os.fsync(fd)
        with Stopwatch() as sw:
            for _ in range(count):
                os.write(fd, payload)
                os.fdatasync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return rate(count, sw.seconds)


def process_write_bytes() -> int | None:
    """Bytes this process has sent to storage so far (Linux), else ``None``:
    tells how many bytes the engine really writes per byte of payload."""
    try:
        with open("/proc/self/io") as f:
            for row in f:
                if row.startswith("write_bytes:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return None


def disk_fdatasync(bench: Bench) -> Iterator[Line]:
    """Workload ``disk.fdatasync``: kept in ``bench.baselines`` for the queue bench."""
    count = bench.size(3_000, 200)
    with bench.scratch() as d:
        per_s = fdatasync_rate(d, count)
    bench.baselines["fdatasync_per_s"] = per_s
    yield Line(
        workload="disk.fdatasync",
        engine="disk",
        record_bytes=SMALL_WRITE,
        records_per_s=round(per_s, 1),
        writes=count,
    )


def disk_bandwidth(bench: Bench, total_bytes: int) -> tuple[float, float]:
    """The disk's sequential MB/s, synced per 4 MB chunk and synced once at
    the end; measured once per run."""
    if "sequential_mb_per_s" not in bench.baselines:
        with bench.scratch() as d:
            synced = sequential_write(d, total_bytes)
            buffered = sequential_write(d, total_bytes, sync_each=False)
        bench.baselines["sequential_mb_per_s"] = synced
        bench.baselines["sequential_buffered_mb_per_s"] = buffered
    return bench.baselines["sequential_mb_per_s"], bench.baselines["sequential_buffered_mb_per_s"]
