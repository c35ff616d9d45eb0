"""Moving messages to a queue's dead-letter queue (Q2, Q5) and back."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...config import QueueConfig
from .queue_rows import COLUMNS, find, require

log = logging.getLogger("tidings.queues")


def dead_letter(
    conn: Any,
    qid: int,
    config: QueueConfig,
    row: Sequence[Any],
    reason: str,
    error: str,
    now: int,
) -> None:
    """Move one message row (``COLUMNS`` order) out of its queue: into the
    dead-letter queue with the Q2 headers, or dropped if there is none."""
    mid, count, _expires, group, headers, body = row[:6]
    conn.execute("DELETE FROM messages WHERE queue_id=? AND id=?", (qid, mid))
    conn.execute("UPDATE queues SET size=size-1, dead_lettered=dead_lettered+1 WHERE id=?", (qid,))
    if config.dead_letter is None:
        log.warning(
            "queue %s has no dead-letter queue: message %s dropped (%s)", config.name, mid, reason
        )
        return
    target = find(conn, config.dead_letter)
    if target is None:  # deleted since the queue was declared
        log.warning("dead-letter queue %s is gone: message %s dropped", config.dead_letter, mid)
        return
    marks = {
        "x-original-queue": config.name,
        "x-original-id": str(mid),
        "x-dead-letter-reason": reason,
        "x-last-error": error,
        "x-delivery-count": str(count),
        "x-dead-lettered-at": datetime.fromtimestamp(now / 1000, UTC).isoformat(),
    }
    _insert(conn, target[0], {**json.loads(headers), **marks}, group, body, now)


def _insert(conn: Any, qid: int, headers: dict[str, str], group: Any, body: Any, now: int) -> int:
    row = conn.execute(
        "UPDATE queues SET next_id=next_id+1, size=size+1 WHERE id=? RETURNING next_id", (qid,)
    ).fetchone()
    mid = int(row[0]) - 1
    conn.execute(
        "INSERT INTO messages(queue_id, id, visible_at, group_key, enqueued_at, headers, body) "
        "VALUES (?,?,?,?,?,?,?)",
        (qid, mid, now, group, now, json.dumps(headers), body),
    )
    return mid


def redrive_rows(conn: Any, queue: str, ids: Sequence[int] | None, now: int) -> int:
    """Move dead letters that came from ``queue`` (all, or those whose
    dead-letter message id is in ``ids``) back to it, counters reset."""
    qid, config = require(conn, queue)
    if config.dead_letter is None:
        return 0
    dlq_id, _ = require(conn, config.dead_letter)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE queue_id=? AND leased=0 ORDER BY id", (dlq_id,)
    ).fetchall()
    moved = 0
    for mid, _count, _exp, group, headers, body in rows:
        marks = json.loads(headers)
        if marks.get("x-original-queue") != queue or (ids is not None and mid not in ids):
            continue
        conn.execute("DELETE FROM messages WHERE queue_id=? AND id=?", (dlq_id, mid))
        conn.execute("UPDATE queues SET size=size-1 WHERE id=?", (dlq_id,))
        clean = {k: v for k, v in marks.items() if not k.startswith("x-")}
        _insert(conn, qid, clean, group, body, now)
        moved += 1
    conn.execute("UPDATE queues SET dead_lettered=dead_lettered-? WHERE id=?", (moved, qid))
    return moved
