"""Row-level helpers shared by the SQL queue modules."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ...config import QueueConfig
from ...errors import ConfigurationError, QueueNotFound
from ...message import Delivery

COLUMNS = "id, delivery_count, expires_at, group_key, headers, body"


def now_ms() -> int:
    return int(time.time() * 1000)


def config_of(text: str) -> QueueConfig:
    return QueueConfig(**json.loads(text))


_FIND = "SELECT id, config FROM queues WHERE name=?"


def find(conn: Any, name: str, lock: bool = False) -> tuple[int, QueueConfig] | None:
    """The queue's (id, config), or None. ``lock``: hold its row until the
    transaction ends (FOR UPDATE on PostgreSQL; SQLite's write transaction
    holds the whole file already)."""
    row = conn.execute(_FIND + (" /*for update*/" if lock else ""), (name,)).fetchone()
    return None if row is None else (int(row[0]), config_of(row[1]))


def require(conn: Any, name: str, lock: bool = False) -> tuple[int, QueueConfig]:
    """As :func:`find`; raises QueueNotFound."""
    found = find(conn, name, lock)
    if found is None:
        raise QueueNotFound(
            f"queue {name!r} does not exist: declare it with `tidings queues declare {name}`"
        )
    return found


def reserve_ids(conn: Any, qid: int, n: int) -> int:
    """Take ``n`` ids from the queue's row (it counts them in its size);
    return the first. On PostgreSQL this locks the row: publishers of one
    queue take turns here."""
    row = conn.execute(
        "UPDATE queues SET next_id=next_id+?, size=size+? WHERE id=? RETURNING next_id",
        (n, n, qid),
    ).fetchone()
    return int(row[0]) - n


def check_no_loop(conn: Any, config: QueueConfig) -> None:
    """Follow the dead-letter chain (implicit ``<name>.dlq`` queues too, as
    far as they exist); reaching this queue again would loop."""
    seen = [config.name]  # in chain order: the error shows the path as it runs
    nxt: str | None = config.dead_letter_queue
    while nxt is not None:
        if nxt in seen:
            raise ConfigurationError(
                f"dead-letter chain {' -> '.join([*seen, nxt])} loops back; "
                f"choose a dead-letter queue that does not lead to {config.name!r}"
            )
        seen.append(nxt)
        found = find(conn, nxt)
        nxt = None if found is None else found[1].dead_letter_queue


def delivery(queue: str, row: Sequence[Any], receipt: str, until: int) -> Delivery:
    """A claimed row (``COLUMNS`` order) as a Delivery; ``delivery_count``
    counts this delivery."""
    mid, count, _expires, group, headers, body = row[:6]
    parsed = {} if headers == "{}" else json.loads(headers)  # most messages have none
    return Delivery(queue, mid, bytes(body), parsed, count + 1, count > 0, receipt, until, group)
