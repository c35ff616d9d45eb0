"""Operations on an outbox database: migrate, status, cleanup, re-dispatch.

Each takes the application database as a URL (``sqlite:///app.db``,
``postgresql://host/db?schema=app``) or an open :class:`OutboxDb`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime

from ..config import parse_duration
from .db import OutboxDb, open_db
from .errors import EmptyRange, InvalidRange
from .schema import check_schema, shard_count
from .schema import migrate as _migrate
from .store import OutboxStore, ShardStatus

Target = str | OutboxDb

_LOCK_SHARDS = (
    "SELECT count(pg_advisory_xact_lock(hashtext(current_schema() || '.' || :outbox), s)) "
    "FROM generate_series(0, :n - 1) AS s"
)
_COPY = (
    "INSERT INTO tidings_outbox (outbox, shard, destination, key, value, headers, "
    "created_at, origin) SELECT t.outbox, t.shard, t.destination, t.key, t.value, t.headers, "
    "{now}, t.id FROM tidings_outbox t JOIN tidings_outbox_shards s "
    "ON s.outbox = t.outbox AND s.shard = t.shard "
    "WHERE t.outbox = :outbox AND t.origin IS NULL AND t.id <= s.forwarded_id AND "
)
_BY_ID = "t.id BETWEEN :lo AND :hi ORDER BY t.id"
_BY_TIME = "t.created_at BETWEEN :lo AND :hi ORDER BY t.id"


@contextlib.contextmanager
def _opened(target: Target, create: bool = False) -> Iterator[OutboxDb]:
    if not isinstance(target, str):
        yield target
        return
    db = open_db(target, create=create)
    try:
        yield db
    finally:
        db.close()


def migrate(target: Target, outboxes: Mapping[str, int] | None = None, notify: bool = True) -> int:
    """Create the outbox tables (if missing) and declare ``outboxes``
    (name -> shards; ``{"default": 1}`` when None); the schema version.
    ``notify=False``: PostgreSQL writers of these outboxes send no NOTIFY
    (cheaper concurrent commits) and relays poll every ``pg_poll_s``.
    Raises ConfigurationError (bad name or shard count, a declared outbox
    with another shard count), OutboxSchemaError (a newer schema),
    EngineUnavailable."""
    with _opened(target, create=True) as db:
        return _migrate(db, outboxes, notify)


def status(target: Target, outbox: str | None = None) -> list[ShardStatus]:
    """Per outbox and shard: pending, lag, forwarded/failed counts, which
    relay holds it. Raises OutboxSchemaError, OutboxNotFound."""
    with _opened(target) as db:
        check_schema(db)
        if outbox is not None:
            shard_count(db, outbox)
        return OutboxStore(db).status(outbox)


def cleanup(
    target: Target, older_than: float | str, outbox: str | None = None, page: int = 1000
) -> int:
    """Delete forwarded events older than ``older_than`` (``"7d"``) in pages
    of ``page`` rows, each its own short transaction; how many. Pending
    events are never deleted. Raises ConfigurationError, OutboxSchemaError."""
    keep_ms = int(parse_duration(older_than, "older_than") * 1000)
    with _opened(target) as db:
        check_schema(db)
        store = OutboxStore(db)
        total = 0
        for s in store.status(outbox):
            total += store.clean_shard(s.outbox, s.shard, keep_ms, page)
        return total


def redispatch(
    target: Target,
    outbox: str = "default",
    *,
    from_id: int | None = None,
    to_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Forward already forwarded events again (disaster recovery, O4): the
    events with ids in ``[from_id, to_id]`` or created in ``[since,
    until]`` are queued again at the end of their shard, keeping their
    original idempotency keys; the relay sends them in id order. Returns
    how many. Raises InvalidRange (start after end, or no range),
    EmptyRange (nothing stored and forwarded in it), OutboxNotFound."""
    lo, hi, by = _range(from_id, to_id, since, until)
    with _opened(target) as db:
        check_schema(db)
        shards = shard_count(db, outbox)
        with db.transaction(lock=True):
            if db.dialect == "postgresql":  # copies take ids in commit order too
                db.query(_LOCK_SHARDS, {"outbox": outbox, "n": shards})
            n = db.execute(_COPY + by, {"outbox": outbox, "lo": lo, "hi": hi})
            if n == 0:
                raise EmptyRange(
                    f"outbox {outbox!r} holds no forwarded event in [{lo}, {hi}] "
                    f"({'ids' if by == _BY_ID else 'ms since the epoch'}): widen the range"
                )
        return n


def _range(
    from_id: int | None, to_id: int | None, since: datetime | None, until: datetime | None
) -> tuple[int, int, str]:
    by_id = from_id is not None or to_id is not None
    by_time = since is not None or until is not None
    if by_id == by_time:
        raise InvalidRange(
            "give a range by id (from_id/to_id) or by time (since/until), one of them"
        )
    if by_id:
        lo, hi, by = from_id or 0, to_id if to_id is not None else 2**62, _BY_ID
    else:
        lo = 0 if since is None else int(since.timestamp() * 1000)
        hi = 2**62 if until is None else int(until.timestamp() * 1000)
        by = _BY_TIME
    if lo > hi:
        raise InvalidRange(f"the range starts at {lo}, after its end {hi}: swap the bounds")
    return lo, hi, by
