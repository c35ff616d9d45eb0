"""The message-row path of the SQL queue store: one ``messages`` row per
message, for everything that needs per-message state (idempotency keys
(Q3), FIFO groups (Q4), delays, TTL (Q5), max length, redeliveries) and for
messages published one to three at a time.

Publish, claim and settle of message rows all live here; each function
runs inside a write transaction that :mod:`.general` opened, after it read
the queue's settings (and, to publish, locked the queue's row).

A message row is claimable when ``visible_at <= now``: a delay, and a lease,
are both just a later ``visible_at``. A claim leases rows in one UPDATE per
batch and gives each claim a fresh receipt, so a consumer whose lease ran
out cannot settle the redelivery someone else now holds. Acks of rows still
leased go in bulk, one statement per claim; anything else is judged per
message, so each failure says which message and why (``LeaseLost``,
``AlreadySettled``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...config import QueueConfig
from ...errors import AlreadySettled, LeaseLost, QueueFull
from ...message import Delivery
from ...ports.queue import OutgoingMessage, Settlement
from .deadletter import dead_letter
from .fifo import block_if_waiting, occupied, promote
from .queue_rows import COLUMNS, delivery, reserve_ids

# ---- publish ------------------------------------------------------------------


def publish(
    conn: Any, qid: int, config: QueueConfig, messages: Sequence[OutgoingMessage], now: int
) -> list[int]:
    """Store messages as rows (queue row locked, bodies checked); return
    ids in input order.

    The queue row is locked first (Q3): on PostgreSQL, publishers of the
    same idempotency key then take turns, and each reads the dedup table
    after the previous one committed (READ COMMITTED reads afresh per
    statement), so only the first stores the message."""
    ids: list[int | None] = [_deduplicated(conn, qid, m, now) for m in messages]
    if any(m.idempotency_key is not None for m in messages):
        # Keyed publishers clean up after themselves, so the dedup table
        # holds about one window's worth of keys instead of growing forever.
        conn.execute("DELETE FROM dedup WHERE queue_id=? AND expires_at<=?", (qid, now))
    fresh, first_with_key = _fresh(messages, ids)
    if fresh:
        _make_room(conn, qid, config, len(fresh), now)
        first = reserve_ids(conn, qid, len(fresh))
        rows = [publish_row(qid, first + n, messages[i], config, now) for n, i in enumerate(fresh)]
        if config.fifo:
            rows = _behind_their_groups(conn, qid, rows)
        _insert_rows(conn, rows)
        for n, i in enumerate(fresh):
            ids[i] = first + n
            _remember(conn, qid, messages[i], first + n, config, now)
    for i, m in enumerate(messages):  # repeats of a key within this call
        if ids[i] is None and m.idempotency_key is not None:
            ids[i] = ids[first_with_key[m.idempotency_key]]
    return [int(i) for i in ids if i is not None]


def publish_row(
    qid: int, mid: int, m: OutgoingMessage, config: QueueConfig, now: int
) -> tuple[Any, ...]:
    """A message row, ``_INSERT_COLUMNS`` order."""
    visible = max(now + int(m.delay_s * 1000), m.not_before_ms or 0)
    expires = None if config.ttl_s is None else now + int(config.ttl_s * 1000)
    headers = json.dumps(dict(m.headers)) if m.headers else "{}"
    return (qid, mid, visible, m.group, expires, now, headers, m.body)


def _fresh(
    messages: Sequence[OutgoingMessage], ids: list[int | None]
) -> tuple[list[int], dict[str, int]]:
    """Indexes of the messages to store: not seen before, and only the first
    of several carrying the same idempotency key in this call."""
    fresh: list[int] = []
    first_with_key: dict[str, int] = {}
    for i, known in enumerate(ids):
        key = messages[i].idempotency_key
        if known is not None or (key is not None and key in first_with_key):
            continue
        if key is not None:
            first_with_key[key] = i
        fresh.append(i)
    return fresh, first_with_key


_INSERT_COLUMNS = (
    "queue_id",
    "id",
    "visible_at",
    "group_key",
    "expires_at",
    "enqueued_at",
    "headers",
    "body",
)
_INSERT = f"INSERT INTO messages({', '.join(_INSERT_COLUMNS)}) VALUES "
_ROWS_PER_INSERT = 400  # 8 parameters each: well under SQLite's bound-parameter limit


def _insert_rows(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """Many rows at once: PostgreSQL connections bring ``copy_rows`` (COPY);
    elsewhere multi-row INSERTs, one statement per 400 messages."""
    copy_rows = getattr(conn, "copy_rows", None)
    if copy_rows is not None:
        copy_rows("messages", _INSERT_COLUMNS, rows)
        return
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        values = ",".join(["(?,?,?,?,?,?,?,?)"] * len(chunk))
        conn.execute(_INSERT + values, [v for row in chunk for v in row])


def _deduplicated(conn: Any, qid: int, m: OutgoingMessage, now: int) -> int | None:
    if m.idempotency_key is None:
        return None
    row = conn.execute(
        "SELECT message_id FROM dedup WHERE queue_id=? AND idem_key=? AND expires_at>?",
        (qid, m.idempotency_key, now),
    ).fetchone()
    return None if row is None else int(row[0])


def _remember(
    conn: Any, qid: int, m: OutgoingMessage, mid: int, config: QueueConfig, now: int
) -> None:
    if m.idempotency_key is None:
        return
    conn.execute(
        "INSERT INTO dedup(queue_id, idem_key, message_id, expires_at) VALUES (?,?,?,?) "
        "ON CONFLICT(queue_id, idem_key) DO UPDATE SET message_id=excluded.message_id, "
        "expires_at=excluded.expires_at",
        (qid, m.idempotency_key, mid, now + int(config.dedup_window_s * 1000)),
    )


def _make_room(conn: Any, qid: int, config: QueueConfig, n: int, now: int) -> None:
    if config.max_length is None:
        return
    size = int(conn.execute("SELECT size FROM queues WHERE id=?", (qid,)).fetchone()[0])
    excess = size + n - config.max_length
    if excess <= 0:
        return
    if config.overflow == "reject" or n > config.max_length:
        raise QueueFull(
            f"queue {config.name!r} holds {size} of max_length={config.max_length}; "
            f"{n} more refused (overflow=reject)"
        )
    oldest = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE queue_id=? ORDER BY id LIMIT ?", (qid, excess)
    ).fetchall()
    for row in oldest:
        dead_letter(conn, qid, config, row, "maxlen", "queue over max_length", now)


def _behind_their_groups(conn: Any, qid: int, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """FIFO (Q4): block each row whose group already has an earlier message."""
    waiting = occupied(conn, qid, (r[3] for r in rows))
    return [(*r[:2], block_if_waiting(r[2], r[3], waiting), *r[3:]) for r in rows]


# ---- claim --------------------------------------------------------------------

# Find and lease in one statement: the subquery walks the claim index
# (visible_at <= now) and skips rows other claimers hold; RETURNING hands
# back the leased rows (delivery_count already counts this delivery).
_CLAIM = (
    "UPDATE messages SET visible_at=?, leased=1, receipt=?, delivery_count=delivery_count+1 "
    "WHERE queue_id=? AND id IN (SELECT id FROM messages WHERE queue_id=? AND visible_at<=? "
    f"ORDER BY visible_at, id LIMIT ? /*skip locked*/) RETURNING {COLUMNS}"
)


def claim(
    conn: Any,
    queue: str,
    qid: int,
    config: QueueConfig,
    want: int,
    lease: tuple[str, int],
    now: int,
) -> list[Delivery]:
    """Lease up to ``want`` ready rows under ``lease`` (receipt, deadline);
    expired ones and those out of deliveries are dead-lettered instead."""
    receipt, until = lease
    out: list[Delivery] = []
    while len(out) < want:
        # FIFO queues too: blocked group members sit past this range (fifo.py).
        rows = conn.execute(_CLAIM, (until, receipt, qid, qid, now, want - len(out))).fetchall()
        rows.sort(key=lambda r: r[0])  # RETURNING has no order; ids are publish order
        before = [(r[0], r[1] - 1, *r[2:]) for r in rows]  # as stored before this claim
        leased = [r for r in before if not _retire(conn, qid, config, r, now)]
        out.extend(delivery(queue, r, receipt, until) for r in leased)
        if len(rows) == len(leased):  # nothing retired: no more to find now
            break
    return out


def _retire(conn: Any, qid: int, config: QueueConfig, row: Sequence[Any], now: int) -> bool:
    """Dead-letter instead of delivering: expired (Q5) or out of deliveries (Q2)."""
    count, expires = row[1], row[2]
    if expires is not None and expires <= now:
        dead_letter(conn, qid, config, row, "expired", "ttl elapsed before delivery", now)
        return True
    if config.max_deliveries is not None and count >= config.max_deliveries:
        dead_letter(conn, qid, config, row, "max_deliveries", "lease expired", now)
        return True
    return False


# ---- settle -------------------------------------------------------------------


def settle(
    conn: Any,
    qid: int,
    config: QueueConfig,
    settlements: Sequence[Settlement],
    acks: dict[str, set[int]],
    acked: set[int],
    now: int,
) -> list[BaseException | None]:
    """Settle message rows. ``acks``: the ids acked per receipt;
    ``acked``: those acked already with their range leases (consumed). A
    verdict per settlement."""
    acked |= _ack_rows(conn, qid, config, acks, acked, now)
    if acked:
        conn.execute("UPDATE queues SET size=size-? WHERE id=?", (len(acked), qid))
    out: list[BaseException | None] = []
    for s in settlements:
        if s.action == "ack" and s.id in acked:
            acked.remove(s.id)  # a second ack of the same id in this call is settled below
            out.append(None)
            continue
        try:
            _settle_one(conn, qid, config, s, now)
            out.append(None)
        except (LeaseLost, AlreadySettled) as exc:
            out.append(exc)
    return out


def _ack_rows(
    conn: Any,
    qid: int,
    config: QueueConfig,
    acks: dict[str, set[int]],
    done: set[int],
    now: int,
) -> set[int]:
    """Ack in bulk every message row whose lease is still valid (one
    statement per claim), except ``done``; return their ids. The rest go
    through the per-message path, which says which one failed and why."""
    acked: set[int] = set()
    groups: list[str | None] = []
    for receipt, ids in acks.items():
        for chunk in chunks(sorted(ids - done)):
            for mid, group in _delete_leased(conn, qid, receipt, chunk, now):
                acked.add(mid)
                groups.append(group)
    if acked and config.fifo:
        promote(conn, qid, groups)
    return acked


def _delete_leased(
    conn: Any, qid: int, receipt: str, ids: list[int], now: int
) -> list[tuple[int, str | None]]:
    """Delete these messages if still leased under ``receipt``; return the
    (id, group key) of those deleted."""
    # "+visible_at": look rows up by primary key, never by a range of the
    # visible_at index, which holds every leased, delayed and blocked message.
    sql = (
        "DELETE FROM messages WHERE queue_id=? AND receipt=? AND +visible_at>? "
        f"AND id IN ({_marks(ids)}) RETURNING id, group_key"
    )
    return [(int(r[0]), r[1]) for r in conn.execute(sql, (qid, receipt, now, *ids)).fetchall()]


def _settle_one(conn: Any, qid: int, config: QueueConfig, s: Settlement, now: int) -> None:
    row = conn.execute(
        f"SELECT {COLUMNS}, receipt, visible_at FROM messages WHERE queue_id=? AND id=?",
        (qid, s.id),
    ).fetchone()
    if row is None:
        raise AlreadySettled(f"message {s.id} of queue {config.name!r} was already settled")
    if row[6] != s.receipt or row[7] <= now:
        raise LeaseLost(
            f"the lease on message {s.id} of queue {config.name!r} expired; it will be "
            "(or was) redelivered — settle that delivery instead"
        )
    if s.action == "ack":
        conn.execute("DELETE FROM messages WHERE queue_id=? AND id=?", (qid, s.id))
        conn.execute("UPDATE queues SET size=size-1 WHERE id=?", (qid,))
        if config.fifo:
            promote(conn, qid, [row[3]])
    elif s.action == "reject":
        dead_letter(conn, qid, config, row[:6], "rejected", s.reason, now)
    elif config.max_deliveries is not None and row[1] >= config.max_deliveries:
        dead_letter(conn, qid, config, row[:6], "max_deliveries", s.reason, now)
    else:
        conn.execute(
            "UPDATE messages SET visible_at=?, leased=0, receipt=NULL WHERE queue_id=? AND id=?",
            (now + int(s.delay_s * 1000), qid, s.id),
        )


def release(conn: Any, qid: int, by_receipt: dict[str, set[int]], now: int) -> int:
    """End these leases as if never delivered; how many were released."""
    return sum(
        _release_rows(conn, qid, receipt, chunk, now)
        for receipt, ids in by_receipt.items()
        for chunk in chunks(sorted(ids))
    )


def _release_rows(conn: Any, qid: int, receipt: str, ids: list[int], now: int) -> int:
    # visible_at=enqueued_at puts the message back where it was in the claim
    # order (ahead of later publishes), not behind everything published since.
    return int(
        conn.execute(
            "UPDATE messages SET visible_at=enqueued_at, leased=0, receipt=NULL, "
            "delivery_count=delivery_count-1 WHERE queue_id=? AND receipt=? AND visible_at>? "
            f"AND id IN ({_marks(ids)})",
            (qid, receipt, now, *ids),
        ).rowcount
    )


def extend(conn: Any, qid: int, mid: int, receipt: str, until: int, now: int) -> int:
    """Move a live lease's deadline to ``until``; raises if it is not live."""
    n = conn.execute(
        "UPDATE messages SET visible_at=? WHERE queue_id=? AND id=? AND receipt=? AND visible_at>?",
        (until, qid, mid, receipt, now),
    ).rowcount
    if n != 1:
        raise _why_not(conn, qid, mid)
    return until


def chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    """IN lists of bounded length (SQLite limits bound parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _marks(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


def _why_not(conn: Any, qid: int, mid: int) -> Exception:
    row = conn.execute(
        "SELECT receipt, visible_at FROM messages WHERE queue_id=? AND id=?", (qid, mid)
    ).fetchone()
    if row is None:
        return AlreadySettled(f"message {mid} was already settled")
    return LeaseLost(f"the lease on message {mid} expired; it will be redelivered")
