"""The general path of the SQL queue store: each operation in one write
transaction, on SQLite and PostgreSQL alike. It is the reference the
PostgreSQL one-statement path (``pg_fast.py``) must agree with, and where
that path hands over what one statement cannot do.

The queue's settings are read inside the transaction (to publish, under
the queue row's lock), and they pick the store once, before any of it
runs: batch rows and range leases (``batched.py``) for plain messages of
a queue that may hold them, message rows (``rows.py``) for everything else.
A claim of a queue that may hold batch rows serves message rows first
(redeliveries, single publishes), so they never starve behind new batches.

The ``*_in`` functions run in a transaction someone else opened (the
writer's, or a caller's own: ``publish_in_transaction``, exchanges, topic
forwarding); the others run them on the :class:`Writer`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ...config import QueueConfig
from ...errors import RecordTooLarge
from ...message import Delivery
from ...ports.queue import OutgoingMessage, Settlement
from . import batched, rows
from .database import Writer
from .queue_rows import require

Clock = Callable[[], int]  # now, in ms of the shared clock

MIN_BATCH = 4  # messages: fewer are cheaper as rows (a range costs two rows)


def accepts(config: QueueConfig) -> bool:
    """True when the queue may hold batch rows at all (FIFO groups, TTL and
    max length need every message as a row)."""
    return not config.fifo and config.ttl_s is None and config.max_length is None


def fits(config: QueueConfig, messages: Sequence[OutgoingMessage]) -> bool:
    """True when these messages are stored as batch rows: plain messages,
    at least ``MIN_BATCH`` of them, for a queue that :func:`accepts` them."""
    if len(messages) < MIN_BATCH or not accepts(config):
        return False
    return all(
        m.idempotency_key is None and m.group is None and not m.delay_s and m.not_before_ms is None
        for m in messages
    )


# ---- on the writer ------------------------------------------------------------


def publish(
    writer: Writer, queue: str, messages: Sequence[OutgoingMessage], now: Clock
) -> list[int]:
    # Concurrent publishes to one queue that meet in one commit are
    # stored with one insert (see Writer.run's merge).
    return writer.run(
        lambda conn: publish_in(conn, queue, messages, now()),
        channels=("queue:" + queue,),
        merge=(("publish", queue), (queue, messages), partial(_publish_merged, now=now)),
        locks=(("queue", queue),),
    )


def claim(writer: Writer, queue: str, max_messages: int, now: Clock) -> list[Delivery]:
    return writer.run(lambda conn: claim_in(conn, queue, max_messages, now()), fsync=False)


def settle(
    writer: Writer, queue: str, settlements: Sequence[Settlement], now: Clock
) -> list[BaseException | None]:
    # Not fsynced, like offset commits: an ack lost in a power cut only
    # means a redelivery (at-least-once), never a lost message. A process
    # crash loses nothing (WAL, synchronous=NORMAL).
    return writer.run(
        lambda conn: settle_in(conn, queue, settlements, now()),
        fsync=False,
        channels=("queue:" + queue,),
        locks=(("queue", queue),),
    )


def _publish_merged(
    conn: Any, payloads: list[tuple[str, Sequence[OutgoingMessage]]], now: Clock
) -> list[list[int]]:
    """Several callers' publishes to one queue as one; each gets its own ids."""
    queue = payloads[0][0]
    ids = publish_in(conn, queue, [m for _, messages in payloads for m in messages], now())
    out, start = [], 0
    for _, messages in payloads:
        out.append(ids[start : start + len(messages)])
        start += len(messages)
    return out


# ---- in an open transaction ---------------------------------------------------


def publish_in(conn: Any, queue: str, messages: Sequence[OutgoingMessage], now: int) -> list[int]:
    """Store messages in the open transaction; return ids in input order.
    The queue row is locked first: publishers of one queue take turns
    (ids in commit order, dedup and FIFO decisions see each other)."""
    qid, config = require(conn, queue, lock=True)
    for m in messages:
        if len(m.body) > config.max_body_bytes:
            raise RecordTooLarge(
                f"a body of {len(m.body)} bytes exceeds queue {queue!r}'s "
                f"max_body_bytes={config.max_body_bytes}"
            )
    if fits(config, messages):  # plain messages: rows per batch, not per message
        return batched.publish(conn, qid, messages, now)
    return rows.publish(conn, qid, config, messages, now)


def claim_in(conn: Any, queue: str, max_messages: int, now: int) -> list[Delivery]:
    qid, config = require(conn, queue)
    lease = (os.urandom(8).hex(), now + int(config.lease_s * 1000))
    if not accepts(config):
        return rows.claim(conn, queue, qid, config, max_messages, lease, now)
    batched.explode_expired(conn, qid, now)  # their messages are redelivered as rows
    out = rows.claim(conn, queue, qid, config, max_messages, lease, now)
    if len(out) < max_messages:
        out.extend(batched.claim(conn, queue, qid, max_messages - len(out), *lease))
    return out


def settle_in(
    conn: Any, queue: str, settlements: Sequence[Settlement], now: int
) -> list[BaseException | None]:
    qid, config = require(conn, queue)
    acks: dict[str, set[int]] = {}
    for s in settlements:  # a claim's deliveries share one receipt
        if s.action == "ack":
            acks.setdefault(s.receipt, set()).add(s.id)
    acked: set[int] = set()
    if accepts(config):
        # Nacks, rejects and late or partial acks are judged per message.
        nacked = {s.receipt for s in settlements if s.action != "ack"}
        acked = batched.settle_ranges(conn, qid, acks, nacked, now)
    return rows.settle(conn, qid, config, settlements, acks, acked, now)


def release_in(conn: Any, queue: str, leases: Sequence[tuple[int, str]], now: int) -> int:
    qid, config = require(conn, queue)
    by_receipt: dict[str, set[int]] = {}
    for mid, receipt in leases:
        by_receipt.setdefault(receipt, set()).add(mid)
    if accepts(config):
        batched.explode_receipts(conn, qid, set(by_receipt))  # ranges become rows
    return rows.release(conn, qid, by_receipt, now)


def extend_in(conn: Any, queue: str, mid: int, receipt: str, lease_s: float, now: int) -> int:
    qid, config = require(conn, queue)
    if accepts(config):
        batched.explode_receipts(conn, qid, {receipt})  # a range lease ends per message
    return rows.extend(conn, qid, mid, receipt, now + int(lease_s * 1000), now)
