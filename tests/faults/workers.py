"""Worker programs the fault tests run as real processes (and kill).

python workers.py produce URL TOPIC SEED        # prints "partition offset key seq" per ack
python workers.py produce-acks URL TOPIC SEED   # the same through send() and Ack.result()
python workers.py member URL TOPIC GROUP OUT [PAUSE [STOP_AT_READ]]
                                                # consumes, logs "p o" to OUT, commits
python workers.py wait URL TOPIC                # prints latency of each record it gets
python workers.py consume-queue URL QUEUE OUT   # gets, logs "id" to OUT, acks
python workers.py publish-keys URL QUEUE EXCHANGE N
                                                # after "go" on stdin, publishes keys
                                                # k0..kN-1; prints "key id" per key
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tidings import Client, FencedError, GroupConfig, TopicPartition
from tidings.ports.queue import OutgoingMessage

SESSION = GroupConfig(session_timeout_s=2.0, heartbeat_interval_s=0.2)


def _sequenced(seed: str, rng: random.Random) -> Callable[[], tuple[str, str]]:
    """Random keys (8 per seed), each value "key:n" with n counting up per
    key, so order per key can be checked from the log."""
    seq: dict[str, int] = {}

    def next_value() -> tuple[str, str]:
        key = f"{seed}-k{rng.randrange(8)}"
        seq[key] = seq.get(key, -1) + 1
        return key, f"{key}:{seq[key]}"

    return next_value


def produce(url: str, topic: str, seed: str, limit: str = "0") -> None:
    """Random batches of keyed records forever (or ``limit`` records); each
    acknowledged record is printed once durable."""
    rng = random.Random(seed)
    next_value = _sequenced(seed, rng)
    total = 0
    with Client(url) as client:
        producer = client.producer()
        while not int(limit) or total < int(limit):
            pairs = [next_value() for _ in range(rng.randint(1, 40))]
            keys = [k for k, _ in pairs]
            values = [v.encode() for _, v in pairs]
            metas = producer.send_batch(topic, values, keys)
            out = "".join(
                f"{m.partition} {m.offset} {v.decode()}\n"
                for m, v in zip(metas, values, strict=True)
            )
            sys.stdout.write(out)
            sys.stdout.flush()
            total += len(values)


def produce_acks(url: str, topic: str, seed: str, limit: str = "0") -> None:
    """Keyed records through ``send`` in windows of 1-50, forever (or about
    ``limit`` records); each record is printed (and flushed) as soon as its
    ``Ack.result()`` returns."""
    rng = random.Random(seed)
    next_value = _sequenced(seed, rng)
    total = 0
    with Client(url) as client:
        producer = client.producer()
        while not int(limit) or total < int(limit):
            sent = []
            for _ in range(rng.randint(1, 50)):
                key, value = next_value()
                sent.append((producer.send(topic, value.encode(), key), value))
            for ack, value in sent:
                meta = ack.result()
                sys.stdout.write(f"{meta.partition} {meta.offset} {value}\n")
                sys.stdout.flush()
            total += len(sent)


def _stop_before_read(client: Client, n: int) -> None:
    """Fault injection at the worst moment for a zombie: SIGSTOP this process
    just before its ``n``-th log read, i.e. after ``poll`` checked the
    membership and before it fetched."""
    log: Any = client.engine.log
    read = log.read
    calls = itertools.count(1)

    def stopping_read(*args: Any) -> Any:
        if next(calls) == n:
            print(f"stopping {time.time():.3f}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
            print(f"resumed {time.time():.3f}", flush=True)
        return read(*args)

    log.read = stopping_read


def member(
    url: str, topic: str, group: str, out_path: str, pause: str = "0", stop_at_read: str = "0"
) -> None:
    """A group member: log each record, then commit; print assignment changes."""
    with Client(url) as client, open(out_path, "a", buffering=1) as out:
        if int(stop_at_read):
            _stop_before_read(client, int(stop_at_read))
        consumer = client.consumer(
            topic, group, start="beginning", auto_commit=False, group_config=SESSION
        )
        last: set[TopicPartition] = set()
        while True:
            records = consumer.poll(timeout=0.2, max_records=10)
            owned = consumer.assignment()
            if owned != last:
                parts = ",".join(str(tp.partition) for tp in sorted(owned))
                print(f"assigned {time.time():.3f} {parts}", flush=True)
                last = owned
            for r in records:
                out.write(f"{r.partition} {r.offset}\n")
            if records:
                time.sleep(float(pause))  # "processing"
                try:
                    consumer.commit()
                except FencedError:
                    print(f"fenced {time.time():.3f}", flush=True)


def wait(url: str, topic: str) -> None:
    """Print how long after its send time each record arrived (ms)."""
    with Client(url) as client, client.consumer(topic, start="end") as consumer:
        consumer.poll(timeout=0)
        print("ready", flush=True)
        while True:
            for r in consumer.poll(timeout=5.0):
                sent = float(r.value or b"0")
                print(f"{(time.time() - sent) * 1000:.3f}", flush=True)


def consume_queue(url: str, queue: str, out_path: str, hold: str = "0") -> None:
    """Get, log the ids, (optionally hold the lease), ack."""
    with Client(url) as client, open(out_path, "a", buffering=1) as out:
        while True:
            got = client.get(queue, 5, wait=0.5)
            for d in got:
                out.write(f"{d.id} {d.delivery_count}\n")
            time.sleep(float(hold))
            if got:
                client.ack(got)


@contextlib.contextmanager
def _own_transaction(url: str) -> Iterator[Any]:
    """A connection of the application's own, in a transaction committed on
    exit (sqlite3 or psycopg, as the URL says)."""
    if url.startswith("sqlite:///"):
        conn: Any = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None, timeout=60)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    import psycopg

    with (
        psycopg.connect(url.split("?", maxsplit=1)[0], autocommit=True) as pg,
        pg.transaction(),
    ):
        yield pg


def publish_keys(url: str, queue: str, exchange: str, n: str) -> None:
    """Publish keys k0..k(N-1) with idempotency keys, from two threads, in
    chunks of 5 taking turns between single publishes, one keyed batch, an
    exchange publish and publishes in a transaction of our own; start when
    the parent writes a line to stdin (so all workers start together);
    print "key id" for each key."""
    keys = [f"k{i}" for i in range(int(n))]
    chunks = [keys[i : i + 5] for i in range(0, len(keys), 5)]
    with Client(url) as client:
        queues = client.engine.queues

        def one_chunk(c: int, chunk: list[str]) -> list[int]:
            messages = [OutgoingMessage(k.encode(), {}, k) for k in chunk]
            if c % 4 == 0:
                return [client.publish(queue, k.encode(), idempotency_key=k) for k in chunk]
            if c % 4 == 1:
                return queues.publish(queue, messages)
            if c % 4 == 2:
                return queues.publish_exchange(exchange, "", messages)[queue]
            with _own_transaction(url) as conn:  # publish in the caller's transaction
                return [
                    client.publish(queue, k.encode(), idempotency_key=k, connection=conn)
                    for k in chunk
                ]

        def run(part: int) -> None:
            for c in range(part, len(chunks), 2):
                ids = one_chunk(c, chunks[c])
                sys.stdout.write("".join(f"{k} {i}\n" for k, i in zip(chunks[c], ids, strict=True)))
                sys.stdout.flush()

        print("ready", flush=True)
        sys.stdin.readline()
        threads = [threading.Thread(target=run, args=(part,)) for part in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    commands: dict[str, Any] = {
        "produce": produce,
        "produce-acks": produce_acks,
        "member": member,
        "wait": wait,
        "consume-queue": consume_queue,
        "publish-keys": publish_keys,
    }
    commands[command](*args)
