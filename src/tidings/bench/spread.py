"""``log.append.spread``: a ``send_batch`` whose records spread over many
partitions, against the same batch into one partition.

1,000 keyed 100-byte records per call, over 1, 100 and 1,000 partitions
(keys chosen so every partition gets its share). The ratio is the rate
against one partition; on SQLite, ``bytes_per_record`` is the file's
growth per record stored (a one-record batch per partition costs a row)
and ``written_per_record`` the bytes this process wrote per record. On
SQLite a call this spread is one spread row, merged into per-partition
batches every 16 calls (``engines/sql/spread.py``); the timing includes
merging the last ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from ..client.client import Client
from ..partitioner import keys_in_turn
from .disk import process_write_bytes
from .harness import Bench, Line, Stopwatch, rate

RECORD = b"r" * 100
BATCH = 1_000
SPREADS = (1, 100, 1_000)
#: A partition is a server-side stream on a broker (amqp://): 1,000 of them
#: exhaust a default RabbitMQ's 1,024 file descriptors and take the node
#: down (measured), so brokers are measured up to 100.
BROKER_SPREADS = (1, 100)


def append_spread(bench: Bench) -> Iterator[Line]:
    """One line per spread; ``ratio`` = its rate over the one-partition rate."""
    count = bench.size(200_000, 5_000)
    base = None
    spreads = BROKER_SPREADS if bench.url.startswith(("amqp:", "amqps:")) else SPREADS
    for partitions in spreads:
        per_s, cpu_s, stored, written = _spread_once(bench, partitions, count)
        base = base or per_s
        # This process's CPU: the whole engine on SQLite, the client's part
        # on a server.
        extra = {"cpu_us_per_record": round(cpu_s / count * 1e6, 2)}
        if stored is not None and written is not None:  # a file of ours
            extra |= {"bytes_per_record": stored / count, "written_per_record": written / count}
        yield bench.line(
            "log.append.spread",
            len(RECORD),
            records_per_s=per_s,
            partitions=partitions,
            ratio=per_s / base,
            records=count,
            batch=BATCH,
            **extra,
        )


def _spread_once(
    bench: Bench, partitions: int, count: int
) -> tuple[float, float, int | None, int | None]:
    slots = keys_in_turn(BATCH, partitions)
    with bench.client() as (client, topic):
        client.create_topic(topic, partitions=partitions)
        producer = client.producer()
        before = _file_bytes(client)
        io_before = process_write_bytes()
        cpu = time.process_time()
        with Stopwatch() as sw:
            for start in range(0, count, BATCH):
                n = min(BATCH, count - start)
                producer.send_batch(topic, [RECORD] * n, keys=slots[:n])
            # Timed too: SQLite merges the spread rows still pending (what
            # the first read would do), so every record is in its partition.
            client.partitions(topic)
        cpu = time.process_time() - cpu
        io_after = process_write_bytes()
        after = _file_bytes(client)
    stored = None if before is None or after is None else after - before
    written = None if io_before is None or io_after is None else io_after - io_before
    return rate(count, sw.seconds), cpu, stored, written


def _file_bytes(client: Client) -> int | None:
    """The SQLite file with its WAL checkpointed in; None on other engines."""
    if not client.url.startswith("sqlite:"):
        return None
    path = client.engine.path  # type: ignore[attr-defined]
    conn = client.engine._reader()  # type: ignore[attr-defined]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return os.path.getsize(path)
