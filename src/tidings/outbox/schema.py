"""The outbox tables, their version, and the migration that creates them.

The tables live in the *application's* database (the caller writes events
in its own transaction), all named ``tidings_outbox*`` so they never meet
an application table:

* ``tidings_outbox_meta``: ``schema_version`` and ``instance``, a random id
  made at creation that goes into every idempotency key, so two services
  whose outboxes share a name never deduplicate each other's events.
* ``tidings_outboxes``: the declared outboxes, their shard counts, and
  whether the PostgreSQL writer sends a NOTIFY (``notify``).
* ``tidings_outbox``: the events; ``origin`` is set on a re-dispatched copy
  (the original id: its idempotency key is the original's).
* ``tidings_outbox_shards``: per outbox and shard, the relay's progress
  (``forwarded_id``: every event up to it was acknowledged), its lease
  (``owner``, ``epoch`` = fencing token, ``lease_until``) and counters.

On PostgreSQL the writer calls ``tidings_outbox_add_v1``, which takes the
shard's advisory transaction lock before the row gets its id: ids within a
shard are then assigned in commit order (docs/outbox.md, Ordering).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from ..config import validate_name
from ..errors import ConfigurationError
from .db import OutboxDb
from .errors import OutboxNotFound, OutboxSchemaError

SCHEMA_VERSION = 1
ADD_FUNCTION = f"tidings_outbox_add_v{SCHEMA_VERSION}"
NOTIFY_CHANNEL = "tidings_outbox"
MAX_SHARDS = 1024

_SQLITE = (
    "CREATE TABLE tidings_outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE tidings_outboxes (name TEXT PRIMARY KEY, shards INTEGER NOT NULL, "
    "notify INTEGER NOT NULL DEFAULT 1)",
    # AUTOINCREMENT: a plain rowid is max(rowid)+1, so once cleanup deleted
    # the newest forwarded rows a new event could reuse an id at or below
    # the relay's progress mark and never be forwarded.
    "CREATE TABLE tidings_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "outbox TEXT NOT NULL, shard INTEGER NOT NULL, destination TEXT NOT NULL, "
    "key BLOB, value BLOB, headers TEXT, created_at INTEGER NOT NULL, origin INTEGER)",
    # The one index: every event pays for it. Cleanup walks it in id order
    # (within a shard created_at grows with id); re-dispatch by time scans.
    "CREATE INDEX tidings_outbox_order ON tidings_outbox (outbox, shard, id)",
    "CREATE TABLE tidings_outbox_shards (outbox TEXT NOT NULL, shard INTEGER NOT NULL, "
    "forwarded_id INTEGER NOT NULL DEFAULT 0, owner TEXT, epoch INTEGER NOT NULL DEFAULT 0, "
    "lease_until INTEGER NOT NULL DEFAULT 0, forwarded INTEGER NOT NULL DEFAULT 0, "
    "failed INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_forwarded_at INTEGER, "
    "PRIMARY KEY (outbox, shard))",
)

_PG_ADD = f"""
CREATE FUNCTION {ADD_FUNCTION}(p_outbox text, p_hash bigint, p_destination text,
    p_key bytea, p_value bytea, p_headers text) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE n integer; s integer; wake integer; new_id bigint;
BEGIN
  IF (SELECT value FROM tidings_outbox_meta WHERE key = 'schema_version')
     IS DISTINCT FROM '{SCHEMA_VERSION}' THEN RETURN NULL; END IF;
  SELECT shards, notify INTO n, wake FROM tidings_outboxes WHERE name = p_outbox;
  IF n IS NULL THEN RETURN NULL; END IF;
  s := p_hash % n;
  -- Held to the end of the caller's transaction: the next writer of this
  -- shard draws its id only after this one committed (ids = commit order).
  PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.' || p_outbox), s);
  INSERT INTO tidings_outbox (outbox, shard, destination, key, value, headers, created_at)
  VALUES (p_outbox, s, p_destination, p_key, p_value, p_headers,
          (extract(epoch from clock_timestamp()) * 1000)::bigint)
  RETURNING id INTO new_id;
  -- A notifying commit takes a database-wide lock (PostgreSQL serialises
  -- them): outboxes declared with notify off spare writers that cost.
  IF wake = 1 THEN PERFORM pg_notify('{NOTIFY_CHANNEL}', p_outbox); END IF;
  RETURN new_id;
END $$
"""

_POSTGRES = (
    "CREATE TABLE tidings_outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE tidings_outboxes (name TEXT PRIMARY KEY, shards INTEGER NOT NULL, "
    "notify INTEGER NOT NULL DEFAULT 1)",
    "CREATE TABLE tidings_outbox (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "outbox TEXT NOT NULL, shard INTEGER NOT NULL, destination TEXT NOT NULL, "
    "key BYTEA, value BYTEA, headers TEXT, created_at BIGINT NOT NULL, origin BIGINT)",
    "CREATE INDEX tidings_outbox_order ON tidings_outbox (outbox, shard, id)",
    "CREATE TABLE tidings_outbox_shards (outbox TEXT NOT NULL, shard INTEGER NOT NULL, "
    "forwarded_id BIGINT NOT NULL DEFAULT 0, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0, "
    "lease_until BIGINT NOT NULL DEFAULT 0, forwarded BIGINT NOT NULL DEFAULT 0, "
    "failed BIGINT NOT NULL DEFAULT 0, last_error TEXT, last_forwarded_at BIGINT, "
    "PRIMARY KEY (outbox, shard)) WITH (fillfactor=50)",
    _PG_ADD,
)

DDL: dict[str, tuple[str, ...]] = {"sqlite": _SQLITE, "postgresql": _POSTGRES}


def schema_version(db: OutboxDb) -> int | None:
    """The outbox schema version stored in ``db``; None when there is none."""
    if not db.has_table("tidings_outbox_meta"):
        return None
    rows = db.query("SELECT value FROM tidings_outbox_meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else None


def check_schema(db: OutboxDb) -> None:
    """Raise OutboxSchemaError unless ``db`` holds the current outbox schema."""
    version = schema_version(db)
    if version != SCHEMA_VERSION:
        found = "no outbox tables" if version is None else f"outbox schema version {version}"
        raise OutboxSchemaError(
            f"{db.url}: {found}, this tidings needs version {SCHEMA_VERSION}: run "
            f"`tidings outbox migrate --db URL` against it (is --db the application database?)"
        )


def migrate(db: OutboxDb, outboxes: Mapping[str, int] | None = None, notify: bool = True) -> int:
    """Create the outbox tables if missing and declare ``outboxes``
    (name -> shard count; ``{"default": 1}`` when None); the schema version.
    ``notify=False``: their PostgreSQL writers send no NOTIFY and relays poll
    (sets it for these outboxes, also when already declared).

    Safe to run concurrently and repeatedly. Raises OutboxSchemaError for a
    schema newer than this tidings, ConfigurationError for a bad name or
    shard count, or a declared outbox whose shard count differs."""
    wanted = dict(outboxes or {"default": 1})
    for name, shards in wanted.items():
        _check_outbox(name, shards)
    if db.dialect == "sqlite":
        # The relay reads while the application writes: in WAL mode readers
        # never block a commit (a rollback journal would). Persistent.
        db.query("PRAGMA journal_mode=WAL")
    with db.transaction(lock=True):
        version = schema_version(db)
        if version is None:
            db.script(DDL[db.dialect])
            db.execute(
                "INSERT INTO tidings_outbox_meta (key, value) VALUES ('schema_version', :v), "
                "('instance', :i)",
                {"v": str(SCHEMA_VERSION), "i": uuid.uuid4().hex[:12]},
            )
        elif version > SCHEMA_VERSION:
            raise OutboxSchemaError(
                f"{db.url}: outbox schema version {version} is newer than this tidings "
                f"({SCHEMA_VERSION}): upgrade tidings"
            )
        for name, shards in wanted.items():
            _declare(db, name, shards, notify)
    return SCHEMA_VERSION


def _check_outbox(name: str, shards: int) -> None:
    validate_name("outbox", name)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ConfigurationError(f"shards must be 1..{MAX_SHARDS}, got {shards!r}")


def _declare(db: OutboxDb, name: str, shards: int, notify: bool) -> None:
    rows = db.query("SELECT shards FROM tidings_outboxes WHERE name = :n", {"n": name})
    if rows and int(rows[0][0]) != shards:
        raise ConfigurationError(
            f"outbox {name!r} already has {rows[0][0]} shards, not {shards}: a key's shard "
            "would change and its order with it; declare a new outbox instead"
        )
    if rows:
        db.execute(
            "UPDATE tidings_outboxes SET notify = :w WHERE name = :n", {"n": name, "w": int(notify)}
        )
        return
    db.execute(
        "INSERT INTO tidings_outboxes (name, shards, notify) VALUES (:n, :s, :w)",
        {"n": name, "s": shards, "w": int(notify)},
    )
    for shard in range(shards):
        db.execute(
            "INSERT INTO tidings_outbox_shards (outbox, shard) VALUES (:n, :s)",
            {"n": name, "s": shard},
        )


def shard_count(db: OutboxDb, name: str) -> int:
    """How many shards the declared outbox has; raises OutboxNotFound."""
    rows = db.query("SELECT shards FROM tidings_outboxes WHERE name = :n", {"n": name})
    if not rows:
        raise OutboxNotFound(
            f"{db.url}: outbox {name!r} is not declared: run `tidings outbox migrate "
            f"--db URL --outbox {name} --shards N`"
        )
    return int(rows[0][0])


def notifies(db: OutboxDb, name: str) -> bool:
    """Whether the outbox's PostgreSQL writers send a NOTIFY on commit."""
    rows = db.query("SELECT notify FROM tidings_outboxes WHERE name = :n", {"n": name})
    return bool(rows and rows[0][0])


def instance_id(db: OutboxDb) -> str:
    """The database's outbox instance id (part of every idempotency key)."""
    rows = db.query("SELECT value FROM tidings_outbox_meta WHERE key = 'instance'")
    return str(rows[0][0])
