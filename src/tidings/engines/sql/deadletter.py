"""Moving messages to a queue's dead-letter queue (Q2, Q5) and back, and
the TTL sweep that dead-letters expired messages nobody claimed.

A dead letter is never dropped: it goes to the queue's ``dead_letter``
queue, or, without one, to the queue's own ``<name>.dlq``
(:attr:`QueueConfig.dead_letter_queue`); either is created, plain, when the
first dead letter needs it (also when it was deleted meanwhile).

Browsing, redriving and purging work a page at a time: the candidates are
found on a read connection, and each page is moved or deleted in its own
short write transaction (after checking again, under the lock, that each
message is still there and not leased), so a million dead letters never sit
in memory at once nor hold the write lock for long.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from ...config import QueueConfig
from .fifo import block_if_waiting, occupied, promote
from .queue_rows import COLUMNS, find, require

Queue = tuple[int, QueueConfig]  # (queue id, settings), as ``require`` returns them
Item = tuple[dict[str, str], Any, Any]  # (headers, group key, body) of a message to insert

#: Messages per page (per read, and per write transaction).
PAGE = 500


def dead_letter(
    conn: Any,
    qid: int,
    config: QueueConfig,
    row: Sequence[Any],
    reason: str,
    error: str,
    now: int,
) -> None:
    """Move one message row (``COLUMNS`` order) out of its queue into its
    dead-letter queue, with the Q2 headers."""
    dead_letter_many(conn, qid, config, [row], reason, error, now)


def dead_letter_many(
    conn: Any,
    qid: int,
    config: QueueConfig,
    rows: Sequence[Sequence[Any]],
    reason: str,
    error: str,
    now: int,
) -> None:
    """:func:`dead_letter` for several rows of one queue, with a few statements."""
    if not rows:
        return
    n = len(rows)
    conn.executemany("DELETE FROM messages WHERE queue_id=? AND id=?", [(qid, r[0]) for r in rows])
    conn.execute(
        "UPDATE queues SET size=size-?, dead_lettered=dead_lettered+? WHERE id=?", (n, n, qid)
    )
    if config.fifo:
        promote(conn, qid, [r[3] for r in rows])
    at = datetime.fromtimestamp(now / 1000, UTC).isoformat()
    items = [
        (
            {
                **json.loads(headers),
                "x-original-queue": config.name,
                "x-original-id": str(mid),
                "x-dead-letter-reason": reason,
                "x-last-error": error,
                "x-delivery-count": str(count),
                "x-dead-lettered-at": at,
            },
            group,
            body,
        )
        for mid, count, _expires, group, headers, body in (r[:6] for r in rows)
    ]
    _insert_many(conn, target_of(conn, config), items, now)


def target_of(conn: Any, config: QueueConfig) -> Queue:
    """The queue's dead-letter queue, created plain if it does not exist
    (never used yet, or deleted since)."""
    name = config.dead_letter_queue
    found = find(conn, name)
    if found is None:
        conn.execute(
            "INSERT INTO queues(name, config) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
            (name, json.dumps(asdict(QueueConfig(name)))),
        )
        found = require(conn, name)
    return found


def _insert_many(conn: Any, queue: Queue, items: Sequence[Item], now: int) -> None:
    qid, config = queue
    n = len(items)
    row = conn.execute(
        "UPDATE queues SET next_id=next_id+?, size=size+? WHERE id=? RETURNING next_id",
        (n, n, qid),
    ).fetchone()
    first = int(row[0]) - n
    # FIFO: after the queue row is locked (see fifo.py).
    waiting = occupied(conn, qid, [g for _, g, _ in items]) if config.fifo else None
    conn.executemany(
        "INSERT INTO messages(queue_id, id, visible_at, group_key, enqueued_at, headers, body) "
        "VALUES (?,?,?,?,?,?,?)",
        [
            (
                qid,
                first + i,
                now if waiting is None else block_if_waiting(now, group, waiting),
                group,
                now,
                json.dumps(headers),
                body,
            )
            for i, (headers, group, body) in enumerate(items)
        ],
    )


# ---- browsing, redrive, purge ---------------------------------------------------


def fetch(sql: str, params: Sequence[Any]) -> Callable[[Any], list[Any]]:
    """A read of all the rows of one statement, for a ``read(fn)`` runner."""

    def run(conn: Any) -> list[Any]:
        return list(conn.execute(sql, params).fetchall())

    return run


def _from(queue: str) -> str:
    """A LIKE pattern every dead letter of ``queue`` matches (queue names
    hold no LIKE escapes or JSON escapes; ``_`` may match more, so the
    header is checked again)."""
    return f'%"x-original-queue":%"{queue}"%'


def _is_from(headers: str, queue: str) -> bool:
    return bool(json.loads(headers).get("x-original-queue") == queue)


def browse(
    read: Callable[[Callable[[Any], Any]], Any], queue: str, limit: int
) -> tuple[str, list[Any]]:
    """The dead-letter queue's name and up to ``limit`` of its rows
    (``COLUMNS`` order) that came from ``queue``, oldest first; reads a page
    at a time."""
    home = read(lambda conn: require(conn, queue))
    name = home[1].dead_letter_queue
    dlq = read(lambda conn: find(conn, name))
    out: list[Any] = []
    after = 0
    while dlq is not None and len(out) < limit:
        rows = read(
            fetch(
                f"SELECT {COLUMNS} FROM messages WHERE queue_id=? AND id>? AND headers LIKE ? "
                "ORDER BY id LIMIT ?",
                (dlq[0], after, _from(queue), PAGE),
            )
        )
        out.extend(r for r in rows if _is_from(r[4], queue))
        if len(rows) < PAGE:
            break
        after = rows[-1][0]
    return name, out[:limit]


def pages(
    read: Callable[[Callable[[Any], Any]], Any], queue: str, ids: Sequence[int] | None
) -> Iterator[list[int]]:
    """Ids of dead letters from ``queue`` (all, or those in ``ids``), a page
    at a time. Stops at the dead-letter queue's end as it was when called:
    messages dead-lettered again meanwhile wait for the next call."""
    if ids is not None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), PAGE):
            yield wanted[start : start + PAGE]
        return
    name = read(lambda conn: require(conn, queue))[1].dead_letter_queue
    end = read(lambda conn: _next_id(conn, name))
    after = 0
    while end is not None:
        rows = read(
            fetch(
                "SELECT id, headers FROM messages WHERE queue_id=(SELECT id FROM queues "
                "WHERE name=?) AND id>? AND id<? AND headers LIKE ? ORDER BY id LIMIT ?",
                (name, after, end, _from(queue), PAGE),
            )
        )
        mine = [int(r[0]) for r in rows if _is_from(r[1], queue)]
        if mine:
            yield mine
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _next_id(conn: Any, name: str) -> int | None:
    row = conn.execute("SELECT next_id FROM queues WHERE name=?", (name,)).fetchone()
    return None if row is None else int(row[0])


def redrive_rows(conn: Any, queue: str, ids: Sequence[int], now: int) -> int:
    """Move these dead letters (dead-letter message ids) back to ``queue``
    if they came from it and nobody holds a lease on them; counters reset,
    ``x-`` headers removed. One page: ``ids`` comes from :func:`pages`."""
    home, dlq, rows = _dead_letters_of(conn, queue, ids, now)
    if rows:
        _remove_many(conn, dlq, rows)
        items = [
            ({k: v for k, v in json.loads(h).items() if not k.startswith("x-")}, group, body)
            for _mid, _count, _exp, group, h, body in rows
        ]
        _insert_many(conn, home, items, now)
        conn.execute(
            "UPDATE queues SET dead_lettered=dead_lettered-? WHERE id=?", (len(rows), home[0])
        )
    return len(rows)


def purge_rows(conn: Any, queue: str, ids: Sequence[int], now: int) -> int:
    """Delete these dead letters if they came from ``queue`` (other queues'
    dead letters in a shared dead-letter queue are left alone). One page."""
    home, dlq, rows = _dead_letters_of(conn, queue, ids, now)
    if rows:
        _remove_many(conn, dlq, rows)
        conn.execute(
            "UPDATE queues SET dead_lettered=dead_lettered-? WHERE id=?", (len(rows), home[0])
        )
    return len(rows)


def _dead_letters_of(
    conn: Any, queue: str, ids: Sequence[int], now: int
) -> tuple[Queue, Queue, list[Sequence[Any]]]:
    """``queue``, its dead-letter queue, and the rows among ``ids`` there
    that came from ``queue``, except those a consumer of the dead-letter
    queue holds a live lease on."""
    home = require(conn, queue)
    dlq = find(conn, home[1].dead_letter_queue)
    if dlq is None or not ids:
        return home, home, []
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE queue_id=? AND NOT (leased=1 AND visible_at>?) "
        f"AND id IN ({','.join('?' * len(ids))}) ORDER BY id",
        (dlq[0], now, *ids),
    ).fetchall()
    return home, dlq, [r for r in rows if _is_from(r[4], queue)]


def _remove_many(conn: Any, queue: Queue, rows: Sequence[Sequence[Any]]) -> None:
    conn.executemany(
        "DELETE FROM messages WHERE queue_id=? AND id=?", [(queue[0], r[0]) for r in rows]
    )
    conn.execute("UPDATE queues SET size=size-? WHERE id=?", (len(rows), queue[0]))
    if queue[1].fifo:
        promote(conn, queue[0], [r[3] for r in rows])


# ---- the TTL sweep (Q5) -----------------------------------------------------------

# How far (ms) publishers' clocks may disagree: TTL expiry follows id order
# only up to that, so the sweep reads that far past the first unexpired row.
CLOCK_SKEW_MS = 60_000


def expired_pages(
    read: Callable[[Callable[[Any], Any]], Any], queue: str, now: int
) -> Iterator[list[int]]:
    """Ids of unleased messages of a TTL queue whose TTL has passed, a page
    at a time, in id order. Every message of the queue has the same TTL
    from its publish time, so expiry follows id order (up to clock skew
    between publishers) and the scan stops at the first message due more
    than ``CLOCK_SKEW_MS`` from now: it reads what expired, not the backlog."""
    after = 0
    while True:
        rows = read(
            fetch(
                "SELECT id, expires_at, leased FROM messages WHERE queue_id=(SELECT id FROM "
                "queues WHERE name=?) AND id>? ORDER BY id LIMIT ?",
                (queue, after, PAGE),
            )
        )
        due = [int(i) for i, exp, leased in rows if exp is not None and exp <= now and not leased]
        if due:
            yield due
        if len(rows) < PAGE or any(
            exp is not None and exp > now + CLOCK_SKEW_MS for _, exp, _ in rows
        ):
            return
        after = rows[-1][0]


def sweep_page(conn: Any, *, queue: str, ids: list[int], now: int) -> int:
    """Dead-letter those of ``ids`` that are still unleased and expired
    (checked again under the write lock); return how many."""
    qid, config = require(conn, queue)
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE queue_id=? AND leased=0 AND expires_at<=? "
        f"AND id IN ({','.join('?' * len(ids))})",
        (qid, now, *ids),
    ).fetchall()
    rows.sort(key=lambda r: r[0])
    dead_letter_many(conn, qid, config, rows, "expired", "ttl elapsed before delivery", now)
    return len(rows)
