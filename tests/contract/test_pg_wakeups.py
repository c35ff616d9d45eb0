"""Wake-ups on PostgreSQL are sent after the commit, from a thread of the
client (not inside the writing transaction, where PostgreSQL would
serialise every notifying commit through its WAL flush): a waiter on
another client still wakes at once, on every publish path and on appends,
rather than at its 1 s re-check."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

import pytest

from tidings import Client


def _latency(waiter: Callable[[], object], act: Callable[[], object]) -> float:
    """Seconds from ``act()`` returning to ``waiter()`` returning."""
    done = threading.Event()
    woke: list[float] = []

    def wait() -> None:
        waiter()
        woke.append(time.monotonic())
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.15)  # the waiter is waiting (and has re-read) by now
    act()
    acted = time.monotonic()
    assert done.wait(10), "the waiter never woke"
    thread.join()
    return woke[0] - acted


@pytest.mark.timeout(120)
def test_waiters_on_another_client_wake_at_once(pg_schema_url: str) -> None:
    """Queue get(wait=...) woken by a single publish (one-statement path), a
    batch (batch rows), a keyed publish (the group commit) and a topic
    append woken for a consumer's poll: each well under the 1 s re-check."""
    suffix = uuid.uuid4().hex[:6]
    queue, topic = f"wake-{suffix}", f"wake-t-{suffix}"
    waiting, acting = Client(pg_schema_url), Client(pg_schema_url)
    acting.declare_queue(queue)
    acting.create_topic(topic)
    producer = acting.producer()
    latencies: dict[str, list[float]] = {"single": [], "batch": [], "keyed": [], "append": []}
    acts: dict[str, Callable[[int], object]] = {
        "single": lambda i: acting.publish(queue, b"s"),
        "batch": lambda i: acting.publish_batch(queue, [b"b"] * 8),
        "keyed": lambda i: acting.publish(queue, b"k", idempotency_key=f"k{i}"),
    }
    with waiting.consumer(topic, group=f"g-{suffix}", start="end") as consumer:
        consumer.poll(timeout=0.5)  # joined, at the end
        for i in range(3):
            for name, act in acts.items():
                get = partial(waiting.get, queue, 100, wait=10, auto_ack=True)
                latencies[name].append(_latency(get, partial(act, i)))
            latencies["append"].append(
                _latency(
                    lambda: consumer.poll(timeout=10), lambda: producer.send_batch(topic, [b"r"])
                )
            )
    waiting.close()
    acting.close()
    medians = {name: statistics.median(v) for name, v in latencies.items()}
    print(f"\nwake-up latency medians (s): {medians}")
    assert all(m < 0.5 for m in medians.values()), latencies


@pytest.mark.timeout(60)
def test_no_notification_while_nobody_waits(pg_schema_url: str) -> None:
    """Publishes to a queue nobody waits on send no NOTIFY (which would
    take PostgreSQL's notify lock and signal every listening session); once
    a client waits on it, a publish notifies it."""
    import psycopg

    queue = f"quiet-{uuid.uuid4().hex[:6]}"
    mine = f"queue:{queue}"
    raw = psycopg.connect(pg_schema_url.split("?", maxsplit=1)[0], autocommit=True)
    raw.execute("LISTEN tidings")
    publisher, consumer = Client(pg_schema_url), Client(pg_schema_url)
    publisher.declare_queue(queue)
    publisher.publish(queue, b"single")
    publisher.publish_batch(queue, [b"batch"] * 8)
    publisher.publish(queue, b"keyed", idempotency_key="k")
    consumer.ack(consumer.get(queue, 100))  # no wait: not a waiter
    heard = [n.payload for n in raw.notifies(timeout=0.5)]
    assert mine not in heard, "notified while nobody waited"

    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.extend(consumer.get(queue, 1, wait=10)))
    waiting.start()
    time.sleep(0.3)  # the consumer waits now
    publisher.publish(queue, b"awaited")
    heard = [n.payload for n in raw.notifies(timeout=1.0)]
    waiting.join(timeout=10)
    assert mine in heard
    assert len(got) == 1
    raw.close()
    publisher.close()
    consumer.close()
