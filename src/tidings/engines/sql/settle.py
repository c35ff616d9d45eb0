"""Settling leased messages of the SQL queue store: ack, nack (with
delay), reject, and release (put back as if never delivered). Acks of
message rows still leased go in bulk, one statement per claim; anything
else is judged per message, so each failure says which message and why
(``LeaseLost``, ``AlreadySettled``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...config import QueueConfig
from ...errors import AlreadySettled, LeaseLost
from ...ports.queue import Settlement
from . import batched
from .deadletter import dead_letter
from .fifo import promote
from .queue_rows import COLUMNS as _COLUMNS
from .queue_rows import require


def settle_all(
    conn: Any, queue: str, settlements: Sequence[Settlement], now: int
) -> list[BaseException | None]:
    qid, config = require(conn, queue)
    acks: dict[str, set[int]] = {}
    for s in settlements:  # a claim's deliveries share one receipt
        if s.action == "ack":
            acks.setdefault(s.receipt, set()).add(s.id)
    acked = batched.ack_ranges(conn, qid, acks, now)
    # Nacks, rejects and late or partial acks are judged per message.
    batched.explode_receipts(conn, qid, {s.receipt for s in settlements if s.action != "ack"})
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
            _settle(conn, qid, config, s, now)
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


def release_rows(conn: Any, qid: int, receipt: str, ids: list[int], now: int) -> int:
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


def chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    """IN lists of bounded length (SQLite limits bound parameters)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _marks(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


def _settle(conn: Any, qid: int, config: QueueConfig, s: Settlement, now: int) -> None:
    row = conn.execute(
        f"SELECT {_COLUMNS}, receipt, visible_at FROM messages WHERE queue_id=? AND id=?",
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


def why_not(conn: Any, qid: int, mid: int, receipt: str, now: int) -> Exception:
    row = conn.execute(
        "SELECT receipt, visible_at FROM messages WHERE queue_id=? AND id=?", (qid, mid)
    ).fetchone()
    if row is None:
        return AlreadySettled(f"message {mid} was already settled")
    return LeaseLost(f"the lease on message {mid} expired; it will be redelivered")
