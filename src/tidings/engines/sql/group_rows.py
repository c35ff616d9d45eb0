"""A consumer group's rows in the SQL store: its state (``groups``, locked
for a transition) and its committed offsets (``offsets``). Used by the log
(log.py) in its own transactions and in the caller's (``commit_in``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from ...groups.coordinator import GroupState
from ...message import TopicPartition


def commit_txn(
    conn: Any,
    *,
    group: str,
    member_id: str | None,
    offsets: Mapping[TopicPartition, int],
    now: float,
) -> None:
    state = lock_group(conn, group)
    state.check_commit(member_id, set(offsets), now)  # before any write: fenced → nothing
    conn.executemany(
        'INSERT INTO offsets(group_name, topic, partition, "offset", committed) '
        "VALUES (?,?,?,?,?) ON CONFLICT(group_name, topic, partition) "
        'DO UPDATE SET "offset"=excluded."offset", committed=excluded.committed',
        [(group, tp.topic, tp.partition, off, int(now * 1000)) for tp, off in offsets.items()],
    )


def lock_group(conn: sqlite3.Connection, group: str) -> GroupState:
    """The group's state, locked for this write transaction (created if new).

    The marker becomes FOR UPDATE on PostgreSQL; on SQLite the database
    write lock already makes the read-modify-write atomic."""
    conn.execute(
        "INSERT INTO groups(name, state) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
        (group, GroupState(group).to_json()),
    )
    row = conn.execute("SELECT state FROM groups WHERE name=? /*for update*/", (group,)).fetchone()
    return GroupState.from_json(row[0])


def shift_sessions(state: GroupState, seconds: float) -> None:
    for member in state.members.values():
        member.last_seen += seconds


def load_group_row(conn: Any, group: str) -> GroupState | None:
    row = conn.execute("SELECT state FROM groups WHERE name=?", (group,)).fetchone()
    return None if row is None else GroupState.from_json(row[0])


def store_group(conn: sqlite3.Connection, state: GroupState) -> None:
    conn.execute(
        "INSERT INTO groups(name, state) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET state=excluded.state",
        (state.group, state.to_json()),
    )
