"""Disk space and bytes written by deletes, on the SQLite engine.

``log.retention.space``: fill a topic with 1,000-byte records in 100 KB
batches, then let retention remove all but 1 MB. Reports the bytes written
per byte removed, the longest a one-record append on another topic waited
meanwhile (retention's longest write transaction), the WAL left behind, and
the file before and after maintenance gave the free space back.

``queue.drain.space``: publish 1,000-byte messages, then get + ack them
all. Reports the bytes written per byte of payload while draining and the
file size after the drain and after maintenance.

Bytes written are this process's ``write_bytes`` (Linux ``/proc/self/io``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from ..client.client import Client
from ..errors import UnsupportedFeature
from .disk import process_write_bytes
from .harness import Bench, Line

VALUE = b"v" * 1_000
RETAINED = 1 << 20
MAX_ROUNDS = 200


def retention_space(bench: Bench) -> Iterator[Line]:
    megabytes = bench.size(100, 4)
    written, removed, wal, before, after, rounds = _retention_bytes(bench, megabytes)
    longest = _retention_longest_wait(bench, megabytes)
    yield bench.line(
        "log.retention.space",
        len(VALUE),
        ratio=written / removed,
        removed_bytes=removed,
        written_bytes=written,
        longest_wait_ms=longest * 1000,
        wal_bytes_after=wal,
        file_bytes_after_retention=before,
        file_bytes_after_maintenance=after,
        maintenance_rounds=rounds,
    )


def _filled(bench: Bench, client: Client, topic: str, megabytes: int) -> None:
    _require_file(bench)
    client.create_topic(topic, retention_bytes=RETAINED)
    producer = client.producer()
    for _ in range(megabytes * 10):
        producer.send_batch(topic, [VALUE] * 100)


def _retention_bytes(bench: Bench, megabytes: int) -> tuple[int, int, int, int, int, int]:
    with bench.client() as (client, topic):
        _filled(bench, client, topic, megabytes)
        size_before = sum(i.size for i in client.partitions(topic))
        start = process_write_bytes() or 0
        client.enforce_retention(topic)
        written = (process_write_bytes() or 0) - start
        removed = size_before - sum(i.size for i in client.partitions(topic))
        client.producer().send_batch(topic, [VALUE])  # the WAL restarts here
        wal = os.path.getsize(_path(client) + "-wal")
        before = _file_bytes(client)
        rounds = _reclaim(client)
        return written, removed, wal, before, _file_bytes(client), rounds


def _retention_longest_wait(bench: Bench, megabytes: int) -> float:
    """The longest one-record append on another topic while retention runs."""
    with bench.client() as (client, topic):
        _filled(bench, client, topic, megabytes)
        client.create_topic(topic + "-live")
        waits: list[float] = []
        started, done = threading.Event(), threading.Event()

        def probe() -> None:
            producer = client.producer()
            while not done.is_set():
                t0 = time.perf_counter()
                producer.send_batch(topic + "-live", [b"x"])
                waits.append(time.perf_counter() - t0)
                started.set()

        thread = threading.Thread(target=probe)
        thread.start()
        started.wait()
        client.enforce_retention(topic)
        done.set()
        thread.join()
        return max(waits)


def drain_space(bench: Bench) -> Iterator[Line]:
    megabytes = bench.size(100, 4)
    _require_file(bench)
    with bench.client() as (client, queue):
        client.declare_queue(queue)
        for _ in range(megabytes):
            client.publish_batch(queue, [VALUE] * 1_000)
        full = _file_bytes(client)
        start = process_write_bytes() or 0
        while got := client.get(queue, 500):
            client.ack(got)
        written = (process_write_bytes() or 0) - start
        drained = _file_bytes(client)
        rounds = _reclaim(client)
        yield bench.line(
            "queue.drain.space",
            len(VALUE),
            ratio=written / (megabytes * 1_000 * len(VALUE)),
            written_bytes=written,
            file_bytes_full=full,
            file_bytes_drained=drained,
            file_bytes_after_maintenance=_file_bytes(client),
            maintenance_rounds=rounds,
        )


def _require_file(bench: Bench) -> None:
    if bench.engine != "tidings-sqlite":
        raise UnsupportedFeature(f"measures an SQLite file; {bench.engine} has none")


def _path(client: Client) -> str:
    return str(client.engine.path)  # type: ignore[attr-defined]


def _file_bytes(client: Client) -> int:
    """The file once its WAL is checkpointed in (what a copy would take)."""
    conn = client.engine._reader()  # type: ignore[attr-defined]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return os.path.getsize(_path(client))


def _reclaim(client: Client) -> int:
    """Maintenance rounds of giving space back until one has nothing to do."""
    reclaim = getattr(client.engine, "reclaim_space", None)
    rounds = 0
    while reclaim is not None and rounds < MAX_ROUNDS and reclaim() > 0:
        rounds += 1
    return rounds
