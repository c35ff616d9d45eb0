"""Failover to a promoted standby (issue 4, multi-host): a client whose URL
lists both hosts with ``target_session_attrs=read-write`` follows the new
primary on its own, and nothing it saw acknowledged is lost (the standby is
synchronous, as it must be for that promise)."""

from __future__ import annotations

import os
import pwd
import threading
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
from pg_standby import StandbyPair

from tidings import Client
from tidings.errors import EngineUnavailable
from tidings.message import RecordMetadata, TopicPartition
from tidings.testing.pytest_plugin import require_engine


def _can_run_servers() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return os.geteuid() == 0  # to run the server binaries as the postgres user


@pytest.fixture
def pair() -> Iterator[StandbyPair]:
    require_engine("postgresql", _can_run_servers())
    cluster = StandbyPair()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
def test_log_producer_follows_promoted_standby(pair: StandbyPair) -> None:
    """Every acknowledged record is on the promoted standby at the offset it
    was acknowledged with; offsets stay dense; the producer resumed alone."""
    with pytest.raises(EngineUnavailable):  # a standby is never written to
        Client(pair.url.replace(f"127.0.0.1:{pair.ports[0]},", ""))
    client = Client(pair.url)
    client.create_topic("orders", partitions=2)
    acks: list[tuple[RecordMetadata, bytes, float]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        producer = client.producer(retry_timeout_s=60)
        i = 0
        try:
            while not stop.is_set():
                value = b"v%d" % i
                (meta,) = producer.send_batch("orders", [value], keys=[b"k%d" % (i % 5)])
                acks.append((meta, value, time.monotonic()))
                i += 1
                time.sleep(0.002)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=produce)
    writer.start()
    _wait(lambda: len(acks) >= 200, 30, "acks before the failover")
    killed, promoted = pair.fail_over()
    _wait(lambda: acks[-1][2] > promoted, 60, "an ack after promotion")
    _wait(lambda: sum(t > promoted for _, _, t in acks) >= 100, 30, "acks after the failover")
    stop.set()
    writer.join()
    client.close()
    assert not errors, errors[0]
    print(
        f"failover: promoted {promoted - killed:.2f} s after the crash; longest gap "
        f"between two acks {max(b[2] - a[2] for a, b in pairwise(acks)):.2f} s; "
        f"{len(acks)} acks"
    )
    stored = _read_all(pair.url, "orders", 2)
    for meta, value, _ in acks:
        assert stored[meta.partition][meta.offset] == value, (meta, value)


@pytest.mark.timeout(120)
def test_queue_messages_survive_failover(pair: StandbyPair) -> None:
    """Published (acknowledged) messages, some leased when the primary dies,
    are all delivered and acked through the same client after the failover."""
    client = Client(pair.url)
    client.declare_queue("jobs", lease="1s")
    published = set()
    for n in range(30):
        bodies = [b"j%d-%d" % (n, i) for i in range(10)]
        client.publish_batch("jobs", bodies)
        published.update(bodies)
    held = client.get("jobs", 25)  # leased, never acked: redelivered later
    assert len(held) == 25
    pair.fail_over()
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    while seen != published and time.monotonic() < deadline:
        try:
            got = client.get("jobs", 50, wait=0.5)
            client.ack(got)
        except EngineUnavailable:  # the first calls after the crash
            time.sleep(0.2)
            continue
        seen.update(d.body for d in got)
    client.publish("jobs", b"after")
    assert [d.body for d in client.get("jobs", 5, wait=2)] == [b"after"]
    client.close()
    assert seen == published


def _read_all(url: str, topic: str, partitions: int) -> dict[int, dict[int, bytes | None]]:
    """partition -> offset -> value, checking offsets are dense from 0."""
    out: dict[int, dict[int, bytes | None]] = {}
    with Client(url) as client:
        for p in range(partitions):
            with client.consumer(
                topic, assign=[TopicPartition(topic, p)], start="beginning"
            ) as consumer:
                records: dict[int, bytes | None] = {}
                while batch := consumer.poll(timeout=0.5, max_records=5000):
                    records.update((r.offset, r.value) for r in batch)
            assert sorted(records) == list(range(len(records))), f"gap in partition {p}"
            out[p] = records
    return out


def _wait(condition: object, patience: float, what: str) -> None:
    deadline = time.monotonic() + patience
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
