"""A PostgreSQL restart under load: nothing acknowledged is lost and the
producer and the consumer resume on their own (issue 4, fault model).

The server restarted is a throwaway one (``pgcluster.PgServer``: a free
loopback port, its own temporary directory), never the machine's shared
PostgreSQL. The server programs are required: without them the test fails
(CI runs every engine), it is not skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pgcluster import ClusterError, PgServer, find_bindir

from tidings import Client, GroupConfig


@pytest.fixture
def server() -> Iterator[PgServer]:
    try:
        bindir = find_bindir()
    except ClusterError as exc:
        missing = str(exc)
    else:
        with PgServer(bindir) as pg:
            yield pg
        return
    pytest.fail(f"the PostgreSQL restart test needs the server programs: {missing}", pytrace=False)


@pytest.mark.timeout(120)
def test_restart_under_load_loses_nothing_acknowledged(server: PgServer) -> None:
    """Acked records survive the restart; the consumer sees every one of them."""
    pg_url = server.url(schema="restart")
    client = Client(pg_url)
    client.create_topic("restart-load", partitions=2)
    acked: list[bytes] = []
    seen: set[bytes] = set()
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce() -> None:
        producer = client.producer(retry_timeout_s=60)
        try:
            for i in range(400):
                value = b"r%d" % i
                producer.send_batch("restart-load", [value], keys=[b"k%d" % (i % 7)])
                acked.append(value)
                time.sleep(0.005)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def consume() -> None:
        config = GroupConfig(session_timeout_s=30, heartbeat_interval_s=0.5)
        with (
            Client(pg_url) as own,
            own.consumer(
                "restart-load", group="g", start="beginning", group_config=config
            ) as consumer,
        ):
            while not stop.is_set():
                seen.update(r.value for r in consumer.poll(timeout=0.2) if r.value)

    producer_thread = threading.Thread(target=produce)
    consumer_thread = threading.Thread(target=consume)
    producer_thread.start()
    consumer_thread.start()
    while len(acked) < 100:
        time.sleep(0.01)
    started = server.sql(server.port, "SELECT pg_postmaster_start_time()")
    server.restart()
    assert server.sql(server.port, "SELECT pg_postmaster_start_time()") != started
    producer_thread.join(timeout=90)
    assert not errors, f"the producer gave up: {errors!r}"
    assert len(acked) == 400
    deadline = time.monotonic() + 30
    while not set(acked) <= seen and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    consumer_thread.join(timeout=30)
    assert set(acked) <= seen, f"{len(set(acked) - seen)} acked records never consumed"
    stored = {r.value for p in (0, 1) for r in client.engine.log.read("restart-load", p, 0, 10_000)}
    assert set(acked) <= stored
    client.close()
