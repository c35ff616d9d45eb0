"""Publishing inside an open transaction: ids, dedup (Q3), delays, TTL,
max length (used by plain publishes and by exchanges, Q6)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...config import QueueConfig
from ...errors import QueueFull, RecordTooLarge
from ...ports.queue import OutgoingMessage
from . import batched
from .deadletter import dead_letter
from .fifo import block_if_waiting, occupied
from .queue_rows import COLUMNS, require


def publish_in(conn: Any, queue: str, messages: Sequence[OutgoingMessage], now: int) -> list[int]:
    """Store messages in the open transaction; return ids in input order.

    The queue row is locked first (Q3): on PostgreSQL, publishers of the
    same idempotency key then take turns, and each reads the dedup table
    after the previous one committed (READ COMMITTED reads afresh per
    statement), so only the first stores the message."""
    qid, config = require(conn, queue, lock=True)
    for m in messages:
        if len(m.body) > config.max_body_bytes:
            raise RecordTooLarge(
                f"a body of {len(m.body)} bytes exceeds queue {queue!r}'s "
                f"max_body_bytes={config.max_body_bytes}"
            )
    if batched.fits(config, messages):  # plain messages: rows per batch, not per message
        first = _reserve_ids(conn, qid, len(messages))
        batched.store(conn, qid, first, messages, now)
        return list(range(first, first + len(messages)))
    ids: list[int | None] = [_deduplicated(conn, qid, m, now) for m in messages]
    if any(m.idempotency_key is not None for m in messages):
        # Keyed publishers clean up after themselves, so the dedup table
        # holds about one window's worth of keys instead of growing forever.
        conn.execute("DELETE FROM dedup WHERE queue_id=? AND expires_at<=?", (qid, now))
    fresh, first_with_key = _fresh(messages, ids)
    if fresh:
        _make_room(conn, qid, config, len(fresh), now)
        first = _reserve_ids(conn, qid, len(fresh))
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


_COLUMNS = (
    "queue_id",
    "id",
    "visible_at",
    "group_key",
    "expires_at",
    "enqueued_at",
    "headers",
    "body",
)
_INSERT = f"INSERT INTO messages({', '.join(_COLUMNS)}) VALUES "
_ROWS_PER_INSERT = 400  # 8 parameters each: well under SQLite's bound-parameter limit


def _insert_rows(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """Many rows at once: PostgreSQL connections bring ``copy_rows`` (COPY);
    elsewhere multi-row INSERTs, one statement per 400 messages."""
    copy_rows = getattr(conn, "copy_rows", None)
    if copy_rows is not None:
        copy_rows("messages", _COLUMNS, rows)
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


def _reserve_ids(conn: Any, qid: int, n: int) -> int:
    row = conn.execute(
        "UPDATE queues SET next_id=next_id+?, size=size+? WHERE id=? RETURNING next_id",
        (n, n, qid),
    ).fetchone()
    return int(row[0]) - n


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


def publish_row(
    qid: int, mid: int, m: OutgoingMessage, config: QueueConfig, now: int
) -> tuple[Any, ...]:
    visible = max(now + int(m.delay_s * 1000), m.not_before_ms or 0)
    expires = None if config.ttl_s is None else now + int(config.ttl_s * 1000)
    headers = json.dumps(dict(m.headers)) if m.headers else "{}"
    return (qid, mid, visible, m.group, expires, now, headers, m.body)
