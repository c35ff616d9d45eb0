"""Outbox writers: one event row, in the caller's own transaction (O1).

``Outbox(name).add(conn, "topic:bookings", value, key=...)`` encodes the
value (a codec failure raises before anything is written), picks the shard
from the key (``crc32_partition(key, shards)``, the same stable hash the
producer uses) and inserts the row through ``conn``: a ``sqlite3``
connection, a psycopg 3 connection, or a SQLAlchemy 2 ``Session`` /
``Connection``. ``AsyncOutbox`` does the same on ``psycopg.AsyncConnection``,
``aiosqlite`` and SQLAlchemy's ``AsyncSession`` / ``AsyncConnection``. The
event exists iff the caller's transaction commits.

The destination is a string: ``"topic:NAME"`` appends to a topic,
``"queue:NAME"`` publishes to a queue.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Mapping
from typing import Any

from .. import tracing
from ..codecs import BYTES, Codec
from ..config import validate_name
from ..errors import ConfigurationError
from .errors import OutboxNotFound, OutboxSchemaError
from .schema import ADD_FUNCTION, SCHEMA_VERSION

KINDS = ("topic", "queue")

_SQLITE_ADD = (
    "INSERT INTO tidings_outbox (outbox, shard, destination, key, value, headers, created_at) "
    "SELECT o.name, :hash % o.shards, :destination, :key, :value, :headers, "
    "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) "
    "FROM tidings_outboxes o JOIN tidings_outbox_meta m "
    f"ON m.key = 'schema_version' AND m.value = '{SCHEMA_VERSION}' "
    "WHERE o.name = :outbox RETURNING id"
)
_PG_ADD = f"SELECT {ADD_FUNCTION}(:outbox, :hash, :destination, :key, :value, :headers)"
ADD = {"sqlite": _SQLITE_ADD, "postgresql": _PG_ADD}
_DIAGNOSE = (
    "SELECT (SELECT value FROM tidings_outbox_meta WHERE key = 'schema_version'), "
    "(SELECT shards FROM tidings_outboxes WHERE name = :outbox)"
)
DIAGNOSE_BY_DIALECT = {"sqlite": _DIAGNOSE, "postgresql": _DIAGNOSE}
# SQLSTATEs of a missing table / function / column: the schema is not there.
_SCHEMA_STATES = {"42P01", "42883", "42703"}
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


def parse_destination(destination: str) -> tuple[str, str]:
    """``"topic:NAME"`` / ``"queue:NAME"`` → (kind, name); raises ConfigurationError."""
    kind, sep, name = destination.partition(":") if isinstance(destination, str) else ("", "", "")
    if not sep or kind not in KINDS:
        raise ConfigurationError(f"destination {destination!r}: write 'topic:NAME' or 'queue:NAME'")
    validate_name(kind, name)
    return kind, name


def shard_hash(key: bytes | None) -> int:
    """The key's stable hash; its shard is ``shard_hash(key) % shards``,
    which equals ``tidings.partitioner.crc32_partition(key, shards)``.
    Keyless events have no order to keep: they are spread at random."""
    return random.getrandbits(31) if key is None else zlib.crc32(key)


def encode_headers(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ConfigurationError("headers must map str to str")
    return json.dumps(dict(headers), separators=(",", ":"))


def pg_params(sql: str) -> str:
    """``:name`` → psycopg's ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class _Writer:
    def __init__(self, name: str = "default", codec: Codec[Any] = BYTES) -> None:
        self.name = validate_name("outbox", name)
        self.codec = codec

    def params(
        self,
        destination: str,
        value: Any,
        key: bytes | str | None,
        headers: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """The row, fully encoded: every bad input fails here, before SQL."""
        kind, _ = parse_destination(destination)
        if value is None and kind == "queue":
            raise ConfigurationError("a queue message needs a body (None is a topic tombstone)")
        data = None if value is None else self.codec.encode(value)
        k = key.encode() if isinstance(key, str) else key
        if k is not None and not isinstance(k, bytes):
            raise ConfigurationError(f"key must be bytes or str, got {type(key).__name__}")
        return {
            "outbox": self.name,
            "hash": shard_hash(k),
            "destination": destination,
            "key": k,
            "value": data,
            # The span that wrote the event is its consumers' parent, as
            # for a direct publish: the relay forwards the headers as stored.
            "headers": encode_headers(tracing.inject(headers)),
        }

    def diagnosis(self, row: tuple[Any, ...] | None) -> Exception:
        """Why no row was inserted: the schema version or the declaration."""
        version, shards = row if row else (None, None)
        if version is None or int(version) != SCHEMA_VERSION:
            return OutboxSchemaError(
                f"outbox schema version {version}, this tidings needs {SCHEMA_VERSION}: "
                "run `tidings outbox migrate --db URL`"
            )
        return OutboxNotFound(
            f"outbox {self.name!r} is not declared (shards {shards}): run `tidings outbox "
            f"migrate --db URL --outbox {self.name} --shards N`"
        )


class Outbox(_Writer):
    """Writes events into a named outbox through the caller's connection::

        outbox = Outbox("bookings", codec=JSON)
        with sqlite3.connect("app.db") as conn:     # one transaction
            conn.execute("UPDATE bookings SET state = 'paid' WHERE id = 7")
            outbox.add(conn, "topic:bookings", {"id": 7, "state": "paid"}, key="7")

    ``add`` returns the event's id. Raises ConfigurationError (bad
    destination, key, headers; a connection with no open transaction),
    SerializationError (the codec refused the value), OutboxSchemaError
    (run the migration), OutboxNotFound (declare the outbox); anything else
    your driver raises is yours (your transaction, your retry).
    """

    def add(
        self,
        conn: Any,
        destination: str,
        value: Any,
        key: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        from . import adapters

        params = self.params(destination, value, key, headers)
        adapter = adapters.sync_adapter(conn)
        row = adapter.first(conn, ADD, params)
        if row is None or row[0] is None:
            raise self.diagnosis(adapter.first(conn, DIAGNOSE_BY_DIALECT, params))
        return int(row[0])


class AsyncOutbox(_Writer):
    """:class:`Outbox` for async connections (``psycopg.AsyncConnection``,
    ``aiosqlite``, SQLAlchemy ``AsyncSession`` / ``AsyncConnection``);
    ``await outbox.add(conn, ...)`` raises what :meth:`Outbox.add` raises."""

    async def add(
        self,
        conn: Any,
        destination: str,
        value: Any,
        key: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        from . import adapters

        params = self.params(destination, value, key, headers)
        adapter = adapters.async_adapter(conn)
        row = await adapter.first(conn, ADD, params)
        if row is None or row[0] is None:
            diag = await adapter.first(conn, DIAGNOSE_BY_DIALECT, params)
            raise self.diagnosis(diag)
        return int(row[0])


def add(
    conn: Any,
    destination: str,
    value: Any,
    key: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    outbox: str = "default",
    codec: Codec[Any] = BYTES,
) -> int:
    """``Outbox(outbox, codec).add(conn, destination, value, key, headers)``."""
    return Outbox(outbox, codec).add(conn, destination, value, key, headers)


def is_schema_error(exc: BaseException) -> bool:
    """A driver error saying the outbox table or function is missing."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's
    if getattr(cause, "sqlstate", None) in _SCHEMA_STATES:
        return True
    text = str(cause)
    return type(cause).__module__.startswith("sqlite3") and (
        "no such table" in text or "no such column" in text
    )
