"""Versioned schema upgrades for the SQL engines (``tidings migrate``).

A new database is created at version 1 (``schema_*.sql``) and then brought
up by the same upgrade steps an existing database takes, so the upgrade
path runs every time a test opens a fresh database.

Rules for a step: it must be safe on a live database (no table rewrite, no
lock that blocks readers or writers for long), and it runs in one
transaction with the version bump, so a database is never half upgraded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .failed import FAILED_SCHEMA
from .spread import SCHEMA as SPREAD_SCHEMA

SCHEMA_VERSION = 6

_LEASES = (  # the same text for both dialects
    "CREATE TABLE leases (queue_id BIGINT NOT NULL, first_id BIGINT NOT NULL, "
    "last_id BIGINT NOT NULL, batch_id BIGINT NOT NULL, receipt TEXT NOT NULL, "
    "visible_at BIGINT NOT NULL, deliveries INTEGER NOT NULL, "
    "PRIMARY KEY (queue_id, first_id))",
    "CREATE INDEX leases_receipt ON leases (queue_id, receipt)",
    "CREATE INDEX leases_visible ON leases (queue_id, visible_at)",
)

# version -> dialect name -> statements that take the schema there.
UPGRADES: dict[int, dict[str, tuple[str, ...]]] = {
    2: {
        # Queue and group tables churn: every claim/ack leaves a dead row
        # version behind. Vacuum them early (where autovacuum runs), and
        # leave room in pages so counter rows (queues.size, partitions'
        # next offset, group state) are updated in place (HOT, no index
        # write). fillfactor only shapes pages written from now on.
        "postgresql": (
            "ALTER TABLE messages SET (fillfactor=90, autovacuum_vacuum_scale_factor=0.01, "
            "autovacuum_analyze_scale_factor=0.02)",
            "ALTER TABLE dedup SET (autovacuum_vacuum_scale_factor=0.02)",
            "ALTER TABLE queues SET (fillfactor=30)",
            "ALTER TABLE partitions SET (fillfactor=30)",
            "ALTER TABLE groups SET (fillfactor=30)",
            "ALTER TABLE offsets SET (fillfactor=50)",
        ),
        "sqlite": (),  # SQLite reuses freed pages itself
    },
    # Batch rows and range leases (batched.py). A batch's counters and its
    # payload live in two tables: SQLite rewrites a whole row on UPDATE, and
    # claims update the counters; a trigger drops the payload with the row.
    3: {
        "postgresql": (
            "CREATE TABLE message_batches (queue_id BIGINT NOT NULL, first_id BIGINT NOT NULL, "
            "count INTEGER NOT NULL, claimed INTEGER NOT NULL DEFAULT 0, "
            "lease_from INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (queue_id, first_id)) WITH (fillfactor=50)",
            "CREATE TABLE batch_payloads (queue_id BIGINT NOT NULL, first_id BIGINT NOT NULL, "
            "enqueued_at BIGINT NOT NULL, payload BYTEA NOT NULL, "
            "PRIMARY KEY (queue_id, first_id))",
            "CREATE FUNCTION tidings_drop_payload() RETURNS trigger LANGUAGE plpgsql "
            "SET search_path FROM CURRENT AS $$ BEGIN "
            "DELETE FROM batch_payloads WHERE queue_id=OLD.queue_id AND first_id=OLD.first_id; "
            "RETURN NULL; END $$",
            "CREATE TRIGGER message_batches_gone AFTER DELETE ON message_batches "
            "FOR EACH ROW EXECUTE FUNCTION tidings_drop_payload()",
            *_LEASES,
        ),
        "sqlite": (
            "CREATE TABLE message_batches (queue_id INTEGER NOT NULL, first_id INTEGER NOT NULL, "
            "count INTEGER NOT NULL, claimed INTEGER NOT NULL DEFAULT 0, "
            "lease_from INTEGER NOT NULL DEFAULT 0, settled INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (queue_id, first_id)) WITHOUT ROWID",
            "CREATE TABLE batch_payloads (queue_id INTEGER NOT NULL, first_id INTEGER NOT NULL, "
            "enqueued_at INTEGER NOT NULL, payload BLOB NOT NULL, "
            "PRIMARY KEY (queue_id, first_id))",
            "CREATE TRIGGER message_batches_gone AFTER DELETE ON message_batches BEGIN "
            "DELETE FROM batch_payloads WHERE queue_id=OLD.queue_id AND first_id=OLD.first_id; "
            "END",
            *_LEASES,
        ),
    },
    # The consumer runtime's failed events, triage actions and durable
    # delivery counters (see failed.py).
    4: {"postgresql": FAILED_SCHEMA["postgresql"], "sqlite": FAILED_SCHEMA["sqlite"]},
    # No time index on batches: a batch's ts never decreases along a
    # partition's offsets (appends store max(last_ts, now); retention and
    # compaction keep it), so a time seek binary-searches the offset index
    # (seek.py). Each batch row had two per-partition index entries, and a
    # send_batch spread over 1,000 partitions dirtied two leaf pages per
    # partition: 12 -> 9 us CPU and 4.9 -> 2.1 KB written per record.
    # Dropping an index is quick (no table rewrite) on both engines.
    5: {
        "postgresql": ("DROP INDEX IF EXISTS batches_by_time",),
        "sqlite": ("DROP INDEX IF EXISTS batches_by_time",),
    },
    # Spread rows (spread.py): a send_batch over many partitions stored as
    # one row on SQLite, merged into per-partition batches later.
    # PostgreSQL keeps one batch row per partition.
    6: {"postgresql": (), "sqlite": SPREAD_SCHEMA},
}


def pending(version: int) -> list[int]:
    """The versions an upgrade from ``version`` goes through, in order."""
    return [v for v in sorted(UPGRADES) if version < v <= SCHEMA_VERSION]


def upgrade(execute: Callable[[str], Any], dialect: str, version: int) -> int:
    """Run the steps after ``version`` with ``execute`` (inside the caller's
    transaction) and record the new version; return it."""
    for target in pending(version):
        for statement in UPGRADES[target][dialect]:
            execute(statement)
        version = target
    execute(f"UPDATE tidings_meta SET value='{version}' WHERE key='schema_version'")
    return version
