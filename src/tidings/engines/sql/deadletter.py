"""Moving messages to a queue's dead-letter queue (Q2, Q5) and back."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ...config import QueueConfig
from .fifo import block_if_waiting, occupied, promote
from .queue_rows import COLUMNS, find, require

log = logging.getLogger("tidings.queues")

Queue = tuple[int, QueueConfig]  # (queue id, settings), as ``require`` returns them


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
    if config.fifo:
        promote(conn, qid, [group])
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
    _insert(conn, target, {**json.loads(headers), **marks}, group, body, now)


def _insert(
    conn: Any,
    queue: Queue,
    headers: dict[str, str],
    group: Any,
    body: Any,
    now: int,
) -> int:
    qid, config = queue
    row = conn.execute(
        "UPDATE queues SET next_id=next_id+1, size=size+1 WHERE id=? RETURNING next_id", (qid,)
    ).fetchone()
    mid = int(row[0]) - 1
    visible = now
    if config.fifo:  # after the queue row is locked: see fifo.py
        visible = block_if_waiting(now, group, occupied(conn, qid, [group]))
    conn.execute(
        "INSERT INTO messages(queue_id, id, visible_at, group_key, enqueued_at, headers, body) "
        "VALUES (?,?,?,?,?,?,?)",
        (qid, mid, visible, group, now, json.dumps(headers), body),
    )
    return mid


def redrive_rows(conn: Any, queue: str, ids: Sequence[int] | None, now: int) -> int:
    """Move dead letters that came from ``queue`` (all, or those whose
    dead-letter message id is in ``ids``) back to it, counters reset."""
    home, dlq, rows = _dead_letters_of(conn, queue, ids, now)
    for mid, _count, _exp, group, headers, body in rows:
        clean = {k: v for k, v in json.loads(headers).items() if not k.startswith("x-")}
        _remove(conn, dlq, mid, group)
        _insert(conn, home, clean, group, body, now)
    conn.execute("UPDATE queues SET dead_lettered=dead_lettered-? WHERE id=?", (len(rows), home[0]))
    return len(rows)


def purge_rows(conn: Any, queue: str, ids: Sequence[int] | None, now: int) -> int:
    """Delete dead letters that came from ``queue`` (all, or these ids),
    leaving other queues' dead letters in a shared dead-letter queue alone."""
    home, dlq, rows = _dead_letters_of(conn, queue, ids, now)
    for row in rows:
        _remove(conn, dlq, row[0], row[3])
    conn.execute("UPDATE queues SET dead_lettered=dead_lettered-? WHERE id=?", (len(rows), home[0]))
    return len(rows)


def _dead_letters_of(
    conn: Any, queue: str, ids: Sequence[int] | None, now: int
) -> tuple[Queue, Queue, list[Sequence[Any]]]:
    """``queue``, its dead-letter queue, and the rows there that came from
    ``queue`` (restricted to ``ids`` if given), except those a consumer of
    the dead-letter queue holds a live lease on."""
    home = require(conn, queue)
    if home[1].dead_letter is None:
        return home, home, []
    dlq = require(conn, home[1].dead_letter)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE queue_id=? AND NOT (leased=1 AND visible_at>?) "
        "ORDER BY id",
        (dlq[0], now),
    ).fetchall()
    wanted = None if ids is None else set(ids)
    mine = [
        r
        for r in rows
        if json.loads(r[4]).get("x-original-queue") == queue and (wanted is None or r[0] in wanted)
    ]
    return home, dlq, mine


def _remove(conn: Any, queue: Queue, mid: int, group: str | None) -> None:
    conn.execute("DELETE FROM messages WHERE queue_id=? AND id=?", (queue[0], mid))
    conn.execute("UPDATE queues SET size=size-1 WHERE id=?", (queue[0],))
    if queue[1].fifo:
        promote(conn, queue[0], [group])
