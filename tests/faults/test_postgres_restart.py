"""A PostgreSQL restart under load: nothing acknowledged is lost and the
producer and the consumer resume on their own (issue 4, fault model)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tidings import Client, GroupConfig
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=60,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    if not os.path.isdir("/etc/postgresql") or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs a local cluster and root")
    import psycopg  # a test dependency (the dev extra): never skipped

    schema = f"restart_{uuid.uuid4().hex[:10]}"
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.timeout(120)
def test_restart_under_load_loses_nothing_acknowledged(pg_url: str) -> None:
    """Acked records survive the restart; the consumer sees every one of them."""
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
    _restart_postgres()
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
