"""PostgreSQL failover: the primary dies, its synchronous standby is promoted,
and a client on a libpq multi-host URL with ``target_session_attrs=read-write``
follows it on its own and loses nothing it acknowledged.

Each test builds its own throwaway primary + standby (``pgcluster.py``) on
free loopback ports, about a second; the machine's PostgreSQL is never
touched. The server programs are required: without them the tests fail
(CI runs every engine), they are not skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple, TypeVar

import pytest
from pgcluster import ClusterError, PgPair, find_bindir

from tidings import Client, EngineError, EngineUnavailable

T = TypeVar("T")
TOPIC = "failover"
PARTITIONS = 3
QUEUE = "failover-jobs"


class Ack(NamedTuple):
    partition: int
    offset: int
    value: bytes
    at: float  # time.monotonic() when send_batch returned


@pytest.fixture
def pair() -> Iterator[PgPair]:
    try:
        bindir = find_bindir()
    except ClusterError as exc:
        missing = str(exc)
    else:
        with PgPair(bindir) as cluster:
            yield cluster
        return
    pytest.fail(f"PostgreSQL failover tests need the server programs: {missing}", pytrace=False)


def retrying(call: Callable[[], T], failures: list[EngineError], seconds: float = 20) -> T:
    """``call()`` until it succeeds, as an application would: retriable engine
    errors (the failover) are collected in ``failures`` and retried."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except EngineError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            failures.append(exc)
            time.sleep(0.05)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        time.sleep(0.02)


class Writer(threading.Thread):
    """Keeps calling ``send_batch`` (the Producer retries retriable errors on
    its own) and records every acknowledged record."""

    def __init__(self, client: Client) -> None:
        super().__init__(name="failover-writer")
        self.client = client
        self.acks: list[Ack] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        producer = self.client.producer(retry_timeout_s=15)
        n = 0
        try:
            while not self.stop.is_set():
                values = [b"v%07d" % (n + i) for i in range(10)]
                keys = [b"k%d" % ((n + i) % 7) for i in range(10)]
                metas = producer.send_batch(TOPIC, values, keys)
                now = time.monotonic()
                self.acks += [
                    Ack(m.partition, m.offset, v, now) for m, v in zip(metas, values, strict=True)
                ]
                n += len(values)
                time.sleep(0.002)
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.mark.timeout(60)
def test_log_producer_follows_promoted_standby(
    pair: PgPair, caplog: pytest.LogCaptureFixture
) -> None:
    """Acked records are on the promoted standby at the acked offsets; offsets
    stay dense; the producer resumes on the new primary by itself."""
    caplog.set_level(logging.WARNING, logger="tidings.producer")
    with Client(pair.url(target_session_attrs="read-write")) as client:
        client.create_topic(TOPIC, partitions=PARTITIONS)
        writer = Writer(client)
        writer.start()
        try:
            time.sleep(1.0)
            assert writer.acks, f"nothing acknowledged before the failover: {writer.error!r}"
            before = len(writer.acks)
            killed_at = time.monotonic()
            pair.kill_primary()
            dead_at = time.monotonic()
            pair.promote()
            promoted_at = time.monotonic()
            wait_until(
                lambda: writer.error is not None or writer.acks[-1].at > promoted_at,
                20,
                "an acknowledgement from the promoted standby",
            )
            time.sleep(1.0)  # keep writing on the new primary for a while
        finally:
            writer.stop.set()
            writer.join(timeout=30)
        assert writer.error is None, f"the producer gave up: {writer.error!r}"
    acks = writer.acks
    retries = [r for r in caplog.records if r.name == "tidings.producer"]
    first_after = next(a.at for a in acks if a.at > dead_at)
    after = sum(a.at > promoted_at for a in acks)
    print(
        f"\nacks: {before} before the kill, {len(acks)} in all, {after} after the promotion; "
        f"producer retries: {len(retries)}; promotion took {promoted_at - dead_at:.3f}s; "
        f"outage (kill -> first ack on the new primary): {first_after - killed_at:.3f}s"
    )
    assert 1 <= len(retries) <= 30, [r.getMessage() for r in retries]
    assert after >= 50, f"only {after} acks after the promotion: the client did not follow"

    dup = [k for k, n in Counter((a.partition, a.offset) for a in acks).items() if n > 1]
    assert not dup, f"two acks for the same offset: {dup[:5]}"
    with Client(pair.url(pair.standby_port)) as promoted:  # the new primary alone
        stored = {
            p: {r.offset: r.value for r in promoted.engine.log.read(TOPIC, p, 0, 1_000_000)}
            for p in range(PARTITIONS)
        }
    for p, records in stored.items():
        assert sorted(records) == list(range(len(records))), f"partition {p}: offsets not dense"
    missing = [a for a in acks if stored[a.partition].get(a.offset) != a.value]
    assert not missing, f"{len(missing)} acknowledged records lost or changed: {missing[:5]}"


@pytest.mark.timeout(60)
def test_queue_publish_and_consume_survive_failover(pair: PgPair) -> None:
    """Every message acknowledged by publish before the failover (and after
    it) is delivered through the same client afterwards; a standby alone is
    refused by ``target_session_attrs=read-write``; the LISTEN connection
    follows the promotion too."""
    standby_only = pair.url(pair.standby_port, target_session_attrs="read-write")
    with pytest.raises(EngineUnavailable, match=r"read-only|writable|hot standby"):
        Client(standby_only).close()  # read-only server: refused, never written to

    failures: list[EngineError] = []
    with Client(pair.url(target_session_attrs="read-write")) as client:
        client.declare_queue(QUEUE, lease="2s")
        published: dict[int, bytes] = {}
        for b in range(10):
            bodies = [b"batch-%d-%d" % (b, i) for i in range(50)]
            published.update(zip(client.publish_batch(QUEUE, bodies), bodies, strict=True))
        for i in range(20):
            published[client.publish(QUEUE, b"single-%d" % i)] = b"single-%d" % i
        leased = client.get(QUEUE, 20)  # leased, never acked: redelivered after the lease
        assert len(leased) == 20

        pair.kill_primary()
        pair.promote()

        for i in range(20):  # the same client, the next calls reconnect
            body = b"after-%d" % i
            publish = partial(client.publish, QUEUE, body, idempotency_key=body.decode())
            mid = retrying(publish, failures)
            published[mid] = body
        received: Counter[int] = Counter()
        deadline = time.monotonic() + 20
        while not published.keys() <= received.keys():
            assert time.monotonic() < deadline, f"{len(published.keys() - received)} never came"
            got = retrying(lambda: client.get(QUEUE, 100, wait=0.5), failures)
            for d in got:
                assert published.get(d.id) == d.body, f"message {d.id}: {d.body!r}"
            received.update(d.id for d in got)
            retrying(partial(client.ack, got), failures)
        assert all(received[d.id] >= 1 for d in leased)
        print(
            f"\n{len(published)} messages, each received (max {max(received.values())}x); "
            f"retriable failures seen by the application: {len(failures)}"
        )
        assert failures, "the failover never reached the client (no failure at all?)"
        assert len(failures) <= 30, failures

        # The listener reconnected to the promoted server: a waiting get is
        # woken by NOTIFY, far sooner than its 1 s polling fallback.
        wait_until(
            lambda: (
                pair.sql(
                    pair.standby_port,
                    "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tidings'",
                )
                != "0"
            ),
            10,
            "the LISTEN connection on the promoted server",
        )
        # Pooled read connections still open to the dead primary break on
        # their first use, however late: the engine retries such a read on a
        # fresh connection, so the application sees no late failure.
        seen = len(failures)
        latencies = []
        for i in range(5):
            body = b"wake-%d" % i
            publish = partial(retrying, partial(client.publish, QUEUE, body), failures)
            timer = threading.Timer(0.2, publish)
            timer.start()
            started = time.monotonic()
            got = retrying(partial(client.get, QUEUE, 1, wait=5), failures)
            latencies.append(time.monotonic() - started - 0.2)
            timer.join()
            assert [d.body for d in got] == [body]
            retrying(partial(client.ack, got), failures)
        print(
            f"wake-up after the failover: max {max(latencies) * 1000:.1f} ms; "
            f"late retriable failures (stale pooled connections): {len(failures) - seen}"
        )
        assert max(latencies) < 0.3, latencies
        assert len(failures) == seen, failures[seen:]
