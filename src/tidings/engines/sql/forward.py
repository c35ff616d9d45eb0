"""A topic feeding queues (issue 3): records appended to a topic are also
published, in the same transaction, to every queue bound to it — so one
event is both replayable (log) and work-distributed (queue)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...ports.log import AppendResult, RecordColumns
from ...ports.queue import OutgoingMessage
from .publish import publish_in
from .queue_rows import now_ms


def binding_name(topic: str) -> str:
    """Topic bindings live in the bindings table under this exchange name."""
    return "topic:" + topic


def bound_queues(conn: Any, topic: str) -> list[str]:
    rows = conn.execute(
        "SELECT queue FROM bindings WHERE exchange=? ORDER BY queue", (binding_name(topic),)
    ).fetchall()
    return [r[0] for r in rows]


def forward(
    conn: Any,
    topic: str,
    batches: Mapping[int, RecordColumns],
    results: Mapping[int, AppendResult],
) -> None:
    """Publish the appended records (tombstones excepted) to the bound queues,
    with ``x-topic``, ``x-partition``, ``x-offset`` and ``x-key`` headers."""
    queues = bound_queues(conn, topic)
    if not queues:
        return
    messages = [
        message
        for p, cols in batches.items()
        if p in results
        for message in _messages(topic, p, cols, results[p].base_offset)
    ]
    # The database's clock where it has one to offer (PostgreSQL: hosts'
    # clocks differ, and the forwarded messages' due times are judged by
    # every consumer); else this host's (SQLite: one host).
    db_now = getattr(conn, "db_now_ms", None)
    now = db_now() if db_now is not None else now_ms()
    for queue in queues:
        publish_in(conn, queue, messages, now)


def _messages(
    topic: str, partition: int, cols: RecordColumns, base: int | None
) -> list[OutgoingMessage]:
    out = []
    for i, value in enumerate(cols.values):
        if value is None:
            continue
        headers = dict(cols.headers[i]) if cols.headers is not None else {}
        headers.update({"x-topic": topic, "x-partition": str(partition)})
        if base is not None:  # SQL engines always know it; the port allows None
            headers["x-offset"] = str(base + i)
        key = None if cols.keys is None else cols.keys[i]
        if key is not None:
            headers["x-key"] = key.decode("utf-8", "backslashreplace")
        out.append(OutgoingMessage(value, headers))
    return out
