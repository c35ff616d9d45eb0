"""FIFO groups (Q4) kept out of the claim's way.

Only the oldest message of each group (its head) is claimable. The others
are *blocked*: stored with ``visible_at = BLOCKED + due`` so they sit past
the end of the claim's index range (``visible_at <= now``), and a claim
never reads them — a hot group with a million waiting messages costs a
claim nothing. When a head leaves the queue (ack, dead-letter), the next
message of its group is promoted back to its own due time.

Invariant, per FIFO queue and group: the lowest id is unblocked, every other
message is blocked. New messages get higher ids than any stored, so a
publish blocks a message iff its group already has one.

Concurrency (PostgreSQL, READ COMMITTED): both sides touch the queue's row
in ``queues`` first (publishers reserve ids, settlers update the size) and
only then look at the group, so the row lock orders them — a publisher
never blocks a message behind a head whose ack missed it. On SQLite the
single writer orders everything anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BLOCKED = 1 << 61  # far past any real time in ms, and due + BLOCKED fits in 64 bits

_HAS_GROUP = "SELECT 1 FROM messages WHERE queue_id=? AND group_key=? LIMIT 1"
_PROMOTE = (
    "UPDATE messages SET visible_at=visible_at-? WHERE queue_id=? AND +visible_at>=? AND id="
    "(SELECT MIN(id) FROM messages WHERE queue_id=? AND group_key=?)"
)


def occupied(conn: Any, qid: int, groups: Iterable[str | None]) -> set[str]:
    """The groups among ``groups`` that already have a message in the queue."""
    return {
        g
        for g in {g for g in groups if g is not None}
        if conn.execute(_HAS_GROUP, (qid, g)).fetchone() is not None
    }


def block_if_waiting(visible_at: int, group: str | None, waiting: set[str]) -> int:
    """The ``visible_at`` to store for a new message of a FIFO queue, noting
    its group in ``waiting`` so later messages of the batch queue behind it."""
    if group is None:
        return visible_at
    if group in waiting:
        return visible_at + BLOCKED
    waiting.add(group)
    return visible_at


def promote(conn: Any, qid: int, groups: Iterable[str | None]) -> None:
    """Unblock the new head of each group whose head just left the queue."""
    for g in {g for g in groups if g is not None}:
        conn.execute(_PROMOTE, (BLOCKED, qid, BLOCKED, qid, g))
