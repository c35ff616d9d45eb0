"""Retention and compaction of stored batches (L6), inside a write transaction."""

from __future__ import annotations

import sqlite3
import time

from ...config import TopicConfig
from . import recordbatch as rb
from .database import Writer


def claim_maintenance(writer: Writer, interval_s: float) -> bool:
    """A lease row: of all processes sharing the database, one per interval
    runs the maintenance round."""
    now = time.time()

    def txn(conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT value FROM tidings_meta WHERE key='maintenance_at' /*for update*/"
        ).fetchone()
        if row is not None and float(row[0]) > now - interval_s * 0.9:
            return False
        conn.execute(
            "INSERT INTO tidings_meta VALUES ('maintenance_at', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (repr(now),),
        )
        return True

    return writer.run(txn, fsync=False)


# Batches removed per retention transaction: a page costs a few ms, so a
# producer waiting for the write lock meanwhile waits that long at most.
RETENTION_PAGE = 100


def retain_partition(
    conn: sqlite3.Connection, tid: int, partition: int, config: TopicConfig, now_ms: int
) -> tuple[int, bool]:
    """Delete the oldest whole batches past the time or size limit, at most
    ``RETENTION_PAGE`` of them; return how many records went and whether
    more may be due (call again in a new transaction). Offsets of what stays
    never change."""
    rows = conn.execute(
        "SELECT last_offset, ts, size, count FROM batches "
        "WHERE topic_id=? AND partition=? ORDER BY last_offset LIMIT ?",
        (tid, partition, RETENTION_PAGE),
    ).fetchall()
    total = conn.execute(
        "SELECT bytes FROM partitions WHERE topic_id=? AND partition=?", (tid, partition)
    ).fetchone()[0]
    cutoff = None if config.retention_s is None else now_ms - int(config.retention_s * 1000)
    doomed = removed = freed = 0
    last = -1
    for last_offset, ts, size, count in rows:
        too_old = cutoff is not None and ts < cutoff
        too_big = config.retention_bytes is not None and total - freed > config.retention_bytes
        if not (too_old or too_big):
            break
        doomed, removed, freed, last = doomed + 1, removed + count, freed + size, last_offset
    if not doomed:
        return 0, False
    # The doomed batches are a prefix in offset order: one range delete.
    conn.execute(
        "DELETE FROM batches WHERE topic_id=? AND partition=? AND last_offset<=?",
        (tid, partition, last),
    )
    conn.execute(
        "UPDATE partitions SET first_offset=?, bytes=bytes-? WHERE topic_id=? AND partition=?",
        (last + 1, freed, tid, partition),
    )
    return removed, doomed == RETENTION_PAGE


def compact_partition(conn: sqlite3.Connection, tid: int, partition: int, horizon_ms: int) -> int:
    """Keep the latest record per key; drop tombstones older than the horizon.

    Two passes over the partition: the first finds each key's latest offset,
    the second rewrites only the batches that lose records (offsets kept, as
    deltas from the batch's base offset).
    """
    latest = _latest_offsets(conn, tid, partition)
    rows = conn.execute(
        "SELECT id, base_offset, ts, crc, payload FROM batches WHERE topic_id=? AND partition=? "
        "ORDER BY last_offset",
        (tid, partition),
    ).fetchall()
    removed = freed = 0
    for row_id, base, ts, crc, payload in rows:
        if rb.checksum(payload) != crc:
            continue  # damaged: left for reads to report, never rewritten under a fresh CRC
        gone, delta = _rewrite(conn, row_id, base, ts, payload, latest, horizon_ms)
        removed, freed = removed + gone, freed + delta
    if freed:
        conn.execute(
            "UPDATE partitions SET bytes=bytes-? WHERE topic_id=? AND partition=?",
            (freed, tid, partition),
        )
    return removed


def _latest_offsets(conn: sqlite3.Connection, tid: int, partition: int) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    rows = conn.execute(
        "SELECT base_offset, crc, payload FROM batches WHERE topic_id=? AND partition=? "
        "ORDER BY last_offset",
        (tid, partition),
    )
    for base, crc, payload in rows:
        if rb.checksum(payload) != crc:
            continue
        d = rb.decode(payload)
        if d.keys is not None:
            for delta, key in zip(d.deltas, d.keys):
                if key is not None:
                    latest[key] = base + delta
    return latest


def _rewrite(
    conn: sqlite3.Connection,
    row_id: int,
    base: int,
    ts: int,
    payload: bytes,
    latest: dict[bytes, int],
    horizon_ms: int,
) -> tuple[int, int]:
    d = rb.decode(payload)
    if d.keys is None:
        return 0, 0
    keep = [
        i
        for i, (delta, key) in enumerate(zip(d.deltas, d.keys))
        if key is None
        or (latest[key] == base + delta and not (d.values[i] is None and ts < horizon_ms))
    ]
    n = len(d.values)
    if len(keep) == n:
        return 0, 0
    if not keep:
        conn.execute("DELETE FROM batches WHERE id=?", (row_id,))
        return n, len(payload)
    new = rb.encode(
        [d.values[i] for i in keep],
        [d.keys[i] for i in keep],
        None if d.headers is None else [d.headers[i] for i in keep],
        deltas=[d.deltas[i] for i in keep],
    )
    conn.execute(
        "UPDATE batches SET last_offset=?, count=?, crc=?, size=?, payload=? WHERE id=?",
        (base + d.deltas[keep[-1]], len(keep), rb.checksum(new), len(new), new, row_id),
    )
    return n - len(keep), len(payload) - len(new)
