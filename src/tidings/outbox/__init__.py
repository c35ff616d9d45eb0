"""The transactional outbox (contracts O1–O4).

Write events in your own transaction, relay them to any engine in commit
order per shard::

    import sqlite3
    from tidings.outbox import Outbox, Relay, migrate

    migrate("sqlite:///app.db", {"bookings": 2})        # once (or `tidings outbox migrate`)
    conn = sqlite3.connect("app.db")
    with conn:                                          # your transaction
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        Outbox("bookings").add(conn, "topic:bookings", b"paid", key="b-7")
    with Relay("sqlite:///app.db", "sqlite:///bus.db", outbox="bookings") as relay:
        relay.run(until_idle=True)                      # or `tidings relay`

Modules: :mod:`.writer` (``Outbox``, ``AsyncOutbox``), :mod:`.schema` (tables,
version, migration), :mod:`.relay`, :mod:`.forward`, :mod:`.store` (lease,
progress, status), :mod:`.admin` (migrate, status, cleanup, re-dispatch),
:mod:`.errors`, :mod:`.metrics` (Prometheus text).
"""

from __future__ import annotations

from .admin import cleanup, migrate, redispatch, status
from .db import OutboxDb, open_db
from .errors import EmptyRange, InvalidRange, OutboxNotFound, OutboxSchemaError, RelayFenced
from .forward import IDEMPOTENCY_HEADER
from .relay import Relay, RelayConfig
from .schema import SCHEMA_VERSION
from .store import ShardStatus
from .writer import AsyncOutbox, Outbox, add

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SCHEMA_VERSION",
    "AsyncOutbox",
    "EmptyRange",
    "InvalidRange",
    "Outbox",
    "OutboxDb",
    "OutboxNotFound",
    "OutboxSchemaError",
    "Relay",
    "RelayConfig",
    "RelayFenced",
    "ShardStatus",
    "add",
    "cleanup",
    "migrate",
    "open_db",
    "redispatch",
    "status",
]
