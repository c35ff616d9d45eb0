"""The write path of a log append, for both SQL engines: offsets reserved
for every partition of the call in one statement, then every batch row
inserted at once. On SQLite a call spread over many partitions is one
spread row instead (``spread.py``; docs/benchmarks.md,
``log.append.spread``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from itertools import repeat
from operator import sub
from typing import Any

from ...ports.log import AppendResult, RecordColumns
from .._common import now_ms
from . import recordbatch as rb
from . import spread
from .forward import forward
from .pgtext import int_array


class Stale(Exception):
    """The cached topic id no longer exists (deleted by another process)."""


class _Pending(Exception):
    """The topic has spread rows (SQLite): the call must be one too."""


# SQLite: the reservation itself checks that the topic has no spread rows
# (no statement more for the common append).
_NO_SPREAD_ROWS = " AND NOT EXISTS (SELECT 1 FROM spread_batches WHERE topic_id=?)"


# Partitions reserved per SQLite statement: 3 parameters each, well under
# its 32,766 bound parameters.
_RESERVE_CHUNK = 500
_RESERVE_ARRAYS = (
    "UPDATE partitions SET next_offset=next_offset+v.n, bytes=bytes+v.b, "
    "last_ts=max(last_ts, ?) FROM unnest(?::int[], ?::bigint[], ?::bigint[]) AS v(p, n, b) "
    "WHERE topic_id=? AND partition=v.p RETURNING partition, next_offset, last_ts"
)


def append_txn(
    conn: sqlite3.Connection,
    *,
    tid: int,
    encoded: Mapping[int, tuple[bytes, int]] | None,
    topic: str,
    batches: Mapping[int, RecordColumns],
    heads: spread.Heads | None = None,
) -> dict[int, AppendResult]:
    """Append ``batches`` (``encoded``: their per-partition payloads, or
    None when the call is to be a spread row) inside a write transaction.

    ``heads`` is given on SQLite, where a spread call, or any call to a
    topic with spread rows pending, is stored as one spread row
    (``spread.py``)."""
    now = now_ms()
    out = None
    if encoded is not None:
        try:
            out = _append_batches(conn, tid, encoded, now, guarded=heads is not None)
        except _Pending:
            pass
    if out is None:
        assert heads is not None
        out = spread.append(conn, heads, tid, batches, now)
        if out is None:
            raise Stale()
    forward(conn, topic, batches, out)
    return out


def _append_batches(
    conn: sqlite3.Connection,
    tid: int,
    encoded: Mapping[int, tuple[bytes, int]],
    now: int,
    guarded: bool,
) -> dict[int, AppendResult]:
    """Reserve every partition's offsets in one statement (per 500), then
    insert all batch rows at once: a call over several partitions costs a
    few statements, not two per partition. ``guarded`` (SQLite): raise
    _Pending, storing nothing, when the topic has spread rows."""
    if not encoded:
        return {}
    reserved = _reserve(conn, tid, encoded, now, guarded)
    parts = list(encoded)
    payloads, counts = zip(*encoded.values())
    nexts, times = zip(*map(reserved.__getitem__, parts))
    bases = list(map(sub, nexts, counts))
    columns = rb.batch_columns(tid, parts, bases, counts, times, payloads)
    if len(parts) > 1 and hasattr(conn, "copy_columns"):  # PostgreSQL: one COPY round trip
        conn.copy_columns("batches", rb.BATCH_COLUMNS, [list(c) for c in columns])
    else:
        conn.executemany(rb.INSERT_BATCH, zip(*columns))
    results = map(tuple.__new__, repeat(AppendResult), zip(bases, counts, times))
    return dict(zip(parts, results))


def _reserve(
    conn: sqlite3.Connection,
    tid: int,
    encoded: Mapping[int, tuple[bytes, int]],
    now: int,
    guarded: bool,
) -> dict[int, tuple[int, int]]:
    """Add each partition's record count and bytes to its row; return its
    new ``(next_offset, last_ts)``. Partitions in ascending order, so two
    transactions lock PostgreSQL's rows in the same order."""
    guard, extra = (_NO_SPREAD_ROWS, (tid,)) if guarded else ("", ())
    if len(encoded) == 1:
        ((p, (payload, n)),) = encoded.items()
        row = conn.execute(
            "UPDATE partitions SET next_offset=next_offset+?, bytes=bytes+?, "
            f"last_ts=max(last_ts, ?) WHERE topic_id=? AND partition=?{guard} "
            "RETURNING next_offset, last_ts",
            (n, len(payload), now, tid, p, *extra),
        ).fetchone()
        if row is None:
            raise _Pending() if guarded and spread.pending(conn, tid) else Stale()
        return {p: (row[0], row[1])}
    ordered = sorted(encoded)
    if hasattr(conn, "copy_rows"):  # PostgreSQL: three array parameters, one plan
        rows = conn.execute(
            _RESERVE_ARRAYS,
            (
                now,
                int_array(ordered),
                int_array(encoded[p][1] for p in ordered),
                int_array(len(encoded[p][0]) for p in ordered),
                tid,
            ),
        ).fetchall()
    else:
        rows = _reserve_values(conn, tid, encoded, ordered, now, guard, extra)
    out = {r[0]: (r[1], r[2]) for r in rows}
    if len(out) != len(encoded):
        # Nothing was reserved when the topic has spread rows (the guard
        # holds for all partitions or none); else some partition is gone.
        raise _Pending() if not out and guarded and spread.pending(conn, tid) else Stale()
    return out


def _reserve_values(
    conn: sqlite3.Connection,
    tid: int,
    encoded: Mapping[int, tuple[bytes, int]],
    ordered: list[int],
    now: int,
    guard: str,
    extra: tuple[int, ...],
) -> list[Any]:
    """SQLite has no arrays: a VALUES list per 500 partitions."""
    rows: list[Any] = []
    for start in range(0, len(ordered), _RESERVE_CHUNK):
        chunk = ordered[start : start + _RESERVE_CHUNK]
        params: list[int] = [now]
        for p in chunk:
            params += (p, encoded[p][1], len(encoded[p][0]))
        values = ",".join(["(?,?,?)"] * len(chunk))
        rows += conn.execute(
            "UPDATE partitions SET next_offset=next_offset+v.column2, bytes=bytes+v.column3, "
            f"last_ts=max(last_ts, ?) FROM (VALUES {values}) AS v "
            f"WHERE topic_id=? AND partition=v.column1{guard} "
            "RETURNING partition, next_offset, last_ts",
            [*params, tid, *extra],
        ).fetchall()
    return rows
