"""Failed events, triage actions and delivery marks on the SQL engines
(implements :class:`tidings.ports.failed.FailedStore`).

Every R3 field has its own column so triage can filter and group in SQL;
headers and the attempt history are JSON text (they are shown, never
queried). Statements are in the shared SQLite dialect (``?``), translated
for PostgreSQL by its connection. The memory engine's queue store is this
same SQL code on an in-memory SQLite database, so it gets this store too.
The RabbitMQ engine opens a SQL engine on its ``failed_store=`` URL and
uses that engine's store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import AlreadyResolved, FailedEventNotFound
from ...ports.failed import (
    PARKED,
    DeliveryMark,
    FailedAction,
    FailedEvent,
    FailedFilter,
    FailureGroup,
)
from ...ports.failed import failed_store as ports_failed_store

if TYPE_CHECKING:  # database.py imports the migrations, which import this module
    from .database import Writer


def _tables(serial: str, blob: str) -> tuple[str, ...]:
    return (
        f"CREATE TABLE failed_events (id {serial}, app TEXT NOT NULL, handler TEXT NOT NULL, "
        "host TEXT NOT NULL, failed_at BIGINT NOT NULL, exception_type TEXT NOT NULL, "
        "exception_message TEXT NOT NULL, traceback TEXT NOT NULL, call_site TEXT NOT NULL, "
        "attempts INTEGER NOT NULL, history TEXT NOT NULL, source TEXT NOT NULL, "
        "topic TEXT, record_partition INTEGER, record_offset BIGINT, group_name TEXT, "
        f"queue TEXT, message_id BIGINT, record_key {blob}, headers TEXT NOT NULL, "
        f"payload {blob}, publisher TEXT, replay_count INTEGER NOT NULL DEFAULT 0, "
        "blocked_by BIGINT, blocks_key INTEGER NOT NULL DEFAULT 0, "
        "status TEXT NOT NULL, resolved_at BIGINT, resolved_by TEXT)",
        "CREATE INDEX failed_events_status ON failed_events (status, app, handler, failed_at)",
        f"CREATE TABLE failed_actions (id {serial}, event_id BIGINT NOT NULL, "
        "action TEXT NOT NULL, actor TEXT NOT NULL, at BIGINT NOT NULL, "
        "outcome TEXT NOT NULL, detail TEXT NOT NULL)",
        "CREATE INDEX failed_actions_event ON failed_actions (event_id)",
        "CREATE TABLE delivery_marks (group_name TEXT NOT NULL, topic TEXT NOT NULL, "
        "record_partition INTEGER NOT NULL, record_offset BIGINT NOT NULL, "
        "attempts INTEGER NOT NULL, suspect_end BIGINT NOT NULL, "
        "PRIMARY KEY (group_name, topic, record_partition))",
    )


FAILED_SCHEMA: dict[str, tuple[str, ...]] = {
    "sqlite": _tables("INTEGER PRIMARY KEY", "BLOB"),
    "postgresql": _tables("BIGSERIAL PRIMARY KEY", "BYTEA"),
}

_COLUMNS = (
    "app, handler, host, failed_at, exception_type, exception_message, traceback, call_site, "
    "attempts, history, source, topic, record_partition, record_offset, group_name, queue, "
    "message_id, record_key, headers, payload, publisher, replay_count, blocked_by, blocks_key, "
    "status, resolved_at, resolved_by"
)
_SELECT = f"SELECT id, {_COLUMNS} FROM failed_events"


def _now() -> int:
    return int(time.time() * 1000)


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _row_of(e: FailedEvent) -> tuple[Any, ...]:
    return (
        e.app, e.handler, e.host, e.failed_at, e.exception_type, e.exception_message,
        e.traceback, e.call_site, e.attempts, json.dumps(list(e.history)), e.source, e.topic,
        e.partition, e.offset, e.group, e.queue, e.message_id, e.key,
        json.dumps(dict(e.headers)), e.payload, e.publisher, e.replay_count, e.blocked_by,
        int(e.blocks_key), PARKED, None, None,
    )  # fmt: skip


def _event_of(row: Any) -> FailedEvent:
    r = list(row)
    return FailedEvent(
        id=r[0], app=r[1], handler=r[2], host=r[3], failed_at=r[4], exception_type=r[5],
        exception_message=r[6], traceback=r[7], call_site=r[8], attempts=r[9],
        history=tuple(json.loads(r[10])), source=r[11], topic=r[12], partition=r[13],
        offset=r[14], group=r[15], queue=r[16], message_id=r[17], key=_blob(r[18]),
        headers=json.loads(r[19]), payload=_blob(r[20]), publisher=r[21], replay_count=r[22],
        blocked_by=r[23], blocks_key=bool(r[24]), status=r[25], resolved_at=r[26],
        resolved_by=r[27],
    )  # fmt: skip


def _where(f: FailedFilter) -> tuple[str, list[Any]]:
    conds: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("app", f.app), ("handler", f.handler), ("topic", f.topic), ("queue", f.queue),
        ("exception_type", f.exception_type), ("status", f.status), ("record_key", f.key),
    ):  # fmt: skip
        if value is not None:
            conds.append(f"{column}=?")
            params.append(value)
    if f.since_ms is not None:
        conds.append("failed_at>=?")
        params.append(f.since_ms)
    if f.until_ms is not None:
        conds.append("failed_at<?")
        params.append(f.until_ms)
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


class SqlFailedStore:
    """Implements :class:`tidings.ports.failed.FailedStore`."""

    def __init__(self, writer: Writer, read: Callable[[Callable[[Any], Any]], Any]) -> None:
        self._w = writer
        self._read = read

    def park(self, event: FailedEvent) -> int:
        marks = ",".join("?" * len(_row_of(event)))
        sql = f"INSERT INTO failed_events ({_COLUMNS}) VALUES ({marks}) RETURNING id"
        return int(self._w.run(lambda c: c.execute(sql, _row_of(event)).fetchone()[0]))

    def get(self, event_id: int) -> FailedEvent:
        row = self._read(lambda c: c.execute(f"{_SELECT} WHERE id=?", (event_id,)).fetchone())
        if row is None:
            raise FailedEventNotFound(
                f"no failed event has id {event_id}: list them with `tidings failed list`"
            )
        return _event_of(row)

    def find(self, where: FailedFilter, limit: int = 1000) -> list[FailedEvent]:
        clause, params = _where(where)
        sql = f"{_SELECT}{clause} ORDER BY id LIMIT ?"
        rows = self._read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [_event_of(r) for r in rows]

    def groups(self, where: FailedFilter) -> list[FailureGroup]:
        clause, params = _where(where)
        sql = (
            "SELECT exception_type, call_site, COUNT(*), MIN(failed_at), MAX(failed_at) "
            f"FROM failed_events{clause} GROUP BY exception_type, call_site "
            "ORDER BY COUNT(*) DESC, exception_type"
        )
        rows = self._read(lambda c: c.execute(sql, params).fetchall())
        return [FailureGroup(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def claim(self, event_id: int, status: str, actor: str) -> FailedEvent:
        def fn(conn: Any) -> FailedEvent:
            row = conn.execute(f"{_SELECT} WHERE id=?", (event_id,)).fetchone()
            if row is None:
                raise FailedEventNotFound(f"no failed event has id {event_id}")
            event = _event_of(row)
            if event.status != PARKED:
                raise AlreadyResolved(
                    f"failed event {event_id} is {event.status} "
                    f"(by {event.resolved_by}); nothing was changed"
                )
            conn.execute(
                "UPDATE failed_events SET status=?, resolved_at=?, resolved_by=? WHERE id=?",
                (status, _now(), actor, event_id),
            )
            return event

        result: FailedEvent = self._w.run(fn)
        return result

    def release(self, event_id: int) -> None:
        self._w.run(
            lambda c: c.execute(
                "UPDATE failed_events SET status=?, resolved_at=NULL, resolved_by=NULL WHERE id=?",
                (PARKED, event_id),
            )
        )

    def record(self, event_id: int, action: str, actor: str, outcome: str, detail: str) -> int:
        sql = (
            "INSERT INTO failed_actions (event_id, action, actor, at, outcome, detail) "
            "VALUES (?,?,?,?,?,?) RETURNING id"
        )
        row = (event_id, action, actor, _now(), outcome, detail)
        return int(self._w.run(lambda c: c.execute(sql, row).fetchone()[0]))

    def actions(self, event_id: int | None = None, limit: int = 1000) -> list[FailedAction]:
        clause, params = ("", []) if event_id is None else (" WHERE event_id=?", [event_id])
        sql = (
            "SELECT id, event_id, action, actor, at, outcome, detail FROM failed_actions"
            f"{clause} ORDER BY id LIMIT ?"
        )
        rows = self._read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [FailedAction(*r) for r in rows]

    def mark(self, group: str, topic: str, partition: int, mark: DeliveryMark) -> None:
        sql = (
            "INSERT INTO delivery_marks (group_name, topic, record_partition, record_offset, "
            "attempts, suspect_end) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (group_name, topic, record_partition) DO UPDATE SET "
            "record_offset=excluded.record_offset, attempts=excluded.attempts, "
            "suspect_end=excluded.suspect_end"
        )
        row = (group, topic, partition, *mark)
        # Not fsynced: a mark must survive the process dying, not the machine.
        self._w.run(lambda c: c.execute(sql, row), fsync=False)

    def marks(self, group: str, topic: str) -> dict[int, DeliveryMark]:
        sql = (
            "SELECT record_partition, record_offset, attempts, suspect_end FROM delivery_marks "
            "WHERE group_name=? AND topic=?"
        )
        rows = self._read(lambda c: c.execute(sql, (group, topic)).fetchall())
        return {int(r[0]): DeliveryMark(int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def blocked_keys(self, app: str, handler: str) -> dict[bytes, int]:
        sql = (
            "SELECT record_key, MIN(id) FROM failed_events WHERE app=? AND handler=? "
            "AND status=? AND blocks_key=1 AND record_key IS NOT NULL GROUP BY record_key"
        )
        rows = self._read(lambda c: c.execute(sql, (app, handler, PARKED)).fetchall())
        return {bytes(r[0]): int(r[1]) for r in rows}


def store_beside(queues: Any) -> SqlFailedStore:
    """The failed-event store in the database of a SQL queue store: the
    memory, SQLite and PostgreSQL engines' ``failed_store()`` (it shares
    that store's write path and read connections)."""
    # Same package: the queue store's writer and readers are the database's.
    return SqlFailedStore(queues._w, queues._read)


#: Kept for callers of the earlier name; finds the engine's capability.
failed_store = ports_failed_store
