"""Plain messages stored a batch per row, leased a range per row.

A row per message costs a row insert to publish, a row update to lease and
a row delete to ack, each with its index entries: on PostgreSQL that is
~10 µs of server work per message whatever the round trips (measured). So
messages that need nothing per message (no delay, group, idempotency key,
and a queue without FIFO, TTL or max length) published several at a time
are stored as one *batch row* (counters in ``message_batches``, bodies and
headers encoded like a log batch in ``batch_payloads``) and claimed as a
contiguous *range lease* of one row (``leases``): publish, claim and ack
cost a few rows per call instead of a few per message.

Anything that needs per-message state *explodes* the range into ordinary
``messages`` rows carrying the same lease (receipt, deadline, delivery
count), and the per-message code takes over unchanged:

* a lease that expired (found by the next claim): its messages become ready
  rows that have been delivered once;
* a settlement other than "ack the whole range while leased" (a nack, a
  reject, a partial ack, a late ack) and ``extend``.

Invariant per batch row: ``claimed`` messages from the front were handed
out, ``settled`` of them are no longer the batch row's business (acked with
their range, or exploded into rows); the row is deleted when ``settled ==
count``. A range lease's messages were delivered exactly once (a
redelivery is always a row).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...message import EMPTY_HEADERS, Delivery
from ...ports.queue import OutgoingMessage
from . import recordbatch as rb
from .queue_rows import reserve_ids

MAX_MESSAGES = 256  # per batch row: a claim reads its whole payload

# Take up to ? messages from the oldest batch row with some left, in one
# statement: SET sees the old values, so lease_from keeps where this
# claim's range starts.
_TAKE = (
    "UPDATE message_batches SET lease_from=claimed, claimed=min(claimed+?, count) "
    "WHERE queue_id=? AND first_id=(SELECT first_id FROM message_batches "
    "WHERE queue_id=? AND claimed<count ORDER BY first_id LIMIT 1 /*skip locked*/) "
    "RETURNING first_id, lease_from, claimed, (SELECT payload FROM batch_payloads p "
    "WHERE p.queue_id=message_batches.queue_id AND p.first_id=message_batches.first_id)"
)
_LEASE_COLUMNS = "first_id, last_id, batch_id, receipt, visible_at, deliveries"
Lease = Sequence[Any]  # a leases row, _LEASE_COLUMNS order


def chunks(messages: Sequence[OutgoingMessage]) -> list[tuple[int, int, bytes]]:
    """(offset in ``messages``, count, encoded payload) per batch row."""
    out = []
    for start in range(0, len(messages), MAX_MESSAGES):
        chunk = messages[start : start + MAX_MESSAGES]
        headers = [m.headers for m in chunk] if any(m.headers for m in chunk) else None
        out.append((start, len(chunk), rb.encode([m.body for m in chunk], None, headers)))
    return out


def publish(conn: Any, qid: int, messages: Sequence[OutgoingMessage], now: int) -> list[int]:
    """Store plain messages (``general.fits``) as batch rows (queue row
    locked, bodies checked); return their ids."""
    first = reserve_ids(conn, qid, len(messages))
    _store(conn, qid, first, messages, now)
    return list(range(first, first + len(messages)))


def _store(conn: Any, qid: int, first: int, messages: Sequence[OutgoingMessage], now: int) -> None:
    """Insert ``messages`` (ids from ``first``) as batch rows."""
    rows = chunks(messages)
    conn.executemany(
        "INSERT INTO batch_payloads(queue_id, first_id, enqueued_at, payload) VALUES (?,?,?,?)",
        [(qid, first + start, now, payload) for start, _, payload in rows],
    )
    conn.executemany(
        "INSERT INTO message_batches(queue_id, first_id, count) VALUES (?,?,?)",
        [(qid, first + start, n) for start, n, _ in rows],
    )


def claim(conn: Any, queue: str, qid: int, want: int, receipt: str, until: int) -> list[Delivery]:
    """Lease up to ``want`` messages from the oldest batch rows."""
    out: list[Delivery] = []
    while len(out) < want:
        row = conn.execute(_TAKE, (want - len(out), qid, qid)).fetchone()
        if row is None:
            break
        first, start, end, payload = row
        conn.execute(
            f"INSERT INTO leases(queue_id, {_LEASE_COLUMNS}) VALUES (?,?,?,?,?,?,1)",
            (qid, first + start, first + end - 1, first, receipt, until),
        )
        out.extend(deliveries(queue, first, start, end, payload, receipt, until))
    return out


def deliveries(
    queue: str, first: int, start: int, end: int, payload: bytes, receipt: str, until: int
) -> list[Delivery]:
    """Messages ``start``..``end - 1`` of the batch row ``first``, first
    delivered under ``receipt`` until ``until``."""
    decoded = rb.decode(bytes(payload))
    bodies, heads = decoded.values, decoded.headers
    return [
        Delivery(
            queue,
            first + i,
            bodies[i] or b"",
            heads[i] if heads is not None else EMPTY_HEADERS,
            1,
            False,
            receipt,
            until,
        )
        for i in range(start, end)
    ]


def settle_ranges(
    conn: Any, qid: int, acks: dict[str, set[int]], nacked: set[str], now: int
) -> set[int]:
    """Ack every live range lease whose messages are all in the ack set of
    its receipt; return the ids acked. Ranges acked in part, or late, and
    those under the ``nacked`` receipts (a nack, a reject) are exploded
    for the message-row path to judge."""
    acked: set[int] = set()
    for receipt, ids in acks.items():
        for lease in _take_leases(conn, qid, receipt):
            lo, hi, batch, _receipt, visible_at, _n = lease
            span = set(range(lo, hi + 1))
            if visible_at > now and span <= ids:
                _settle_batch(conn, qid, batch, len(span))
                acked |= span
            else:
                _explode(conn, qid, lease, expired=False)
    explode_receipts(conn, qid, nacked)
    return acked


def explode_receipts(conn: Any, qid: int, receipts: set[str]) -> None:
    """Turn the range leases under these receipts into message rows that
    keep the lease, so the per-message path can settle or extend them."""
    for receipt in receipts:
        for lease in _take_leases(conn, qid, receipt):
            _explode(conn, qid, lease, expired=False)


def explode_expired(conn: Any, qid: int, now: int, limit: int = 16) -> int:
    """Turn range leases that ran out into ready message rows (delivered
    once); return how many leases."""
    leases = conn.execute(
        f"DELETE FROM leases WHERE queue_id=? AND first_id IN (SELECT first_id FROM leases "
        "WHERE queue_id=? AND visible_at<=? ORDER BY visible_at LIMIT ? /*skip locked*/) "
        f"RETURNING {_LEASE_COLUMNS}",
        (qid, qid, now, limit),
    ).fetchall()
    for lease in leases:
        _explode(conn, qid, lease, expired=True)
    return len(leases)


def _take_leases(conn: Any, qid: int, receipt: str) -> list[Lease]:
    """Delete and return the range leases held under ``receipt``."""
    return conn.execute(  # type: ignore[no-any-return]
        f"DELETE FROM leases WHERE queue_id=? AND receipt=? RETURNING {_LEASE_COLUMNS}",
        (qid, receipt),
    ).fetchall()


def _explode(conn: Any, qid: int, lease: Lease, expired: bool) -> None:
    """Write a (deleted) range lease's messages as rows; an expired lease's
    become ready, a live one's stay leased under the same receipt."""
    lo, hi, batch, receipt, visible_at, deliveries = lease
    enqueued, payload = conn.execute(
        "SELECT enqueued_at, payload FROM batch_payloads WHERE queue_id=? AND first_id=?",
        (qid, batch),
    ).fetchone()
    decoded = rb.decode(bytes(payload))
    rows = []
    for mid in range(lo, hi + 1):
        i = mid - batch
        headers = decoded.headers[i] if decoded.headers is not None else None
        rows.append(
            (
                qid,
                mid,
                visible_at,
                0 if expired else 1,
                None if expired else receipt,
                deliveries,
                enqueued,
                json.dumps(dict(headers)) if headers else "{}",
                decoded.values[i] or b"",
            )
        )
    conn.executemany(
        "INSERT INTO messages(queue_id, id, visible_at, leased, receipt, delivery_count, "
        "enqueued_at, headers, body) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    _settle_batch(conn, qid, batch, len(rows))


def _settle_batch(conn: Any, qid: int, batch: int, n: int) -> None:
    """``n`` more of the batch row's messages are settled; delete the row
    with its last one (one statement in the common case)."""
    gone = conn.execute(
        "DELETE FROM message_batches WHERE queue_id=? AND first_id=? AND settled+?>=count",
        (qid, batch, n),
    ).rowcount
    if not gone:
        conn.execute(
            "UPDATE message_batches SET settled=settled+? WHERE queue_id=? AND first_id=?",
            (n, qid, batch),
        )


# ---- whole-queue views ------------------------------------------------------
def counts(conn: Any, qid: int, now: int) -> tuple[int, int]:
    """(ready, leased) messages held in batch rows and range leases."""
    unclaimed = conn.execute(
        "SELECT SUM(count-claimed) FROM message_batches WHERE queue_id=?", (qid,)
    ).fetchone()[0]
    ready, leased = conn.execute(
        "SELECT SUM(CASE WHEN visible_at<=? THEN last_id-first_id+1 ELSE 0 END), "
        "SUM(CASE WHEN visible_at>? THEN last_id-first_id+1 ELSE 0 END) "
        "FROM leases WHERE queue_id=?",
        (now, now, qid),
    ).fetchone()
    return int(unclaimed or 0) + int(ready or 0), int(leased or 0)


def next_expiry(conn: Any, qid: int, now: int) -> int | None:
    row = conn.execute(
        "SELECT MIN(visible_at) FROM leases WHERE queue_id=? AND visible_at>?", (qid, now)
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def drop(conn: Any, qid: int) -> int:
    """Delete the queue's batch rows and range leases; how many messages."""
    left = conn.execute(
        "SELECT SUM(count-settled) FROM message_batches WHERE queue_id=?", (qid,)
    ).fetchone()[0]
    for table in ("leases", "message_batches", "batch_payloads"):
        conn.execute(f"DELETE FROM {table} WHERE queue_id=?", (qid,))
    return int(left or 0)
