"""Retention and compaction of stored batches (L6), inside a write transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from functools import partial
from itertools import repeat
from typing import Any

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
    if doomed:  # the doomed batches are a prefix in offset order: one range delete
        conn.execute(
            "DELETE FROM batches WHERE topic_id=? AND partition=? AND last_offset<=?",
            (tid, partition, last),
        )
        conn.execute(
            "UPDATE partitions SET first_offset=?, bytes=bytes-? WHERE topic_id=? AND partition=?",
            (last + 1, freed, tid, partition),
        )
    if cutoff is not None and doomed < RETENTION_PAGE:
        removed += _trim_head(conn, tid, partition, cutoff)
    return removed, doomed == RETENTION_PAGE


def _trim_head(conn: sqlite3.Connection, tid: int, partition: int, cutoff: int) -> int:
    """Time retention inside the partition's first batch when it was merged
    from several spread appends (``spread.py``: a time per record, the
    row's ts its last record's): its records older than ``cutoff`` are a
    prefix, removed by rewriting the batch from the first one kept, so time
    retention stays exact. Returns how many records went."""
    row = conn.execute(
        "SELECT id, base_offset, ts, crc, payload FROM batches "
        "WHERE topic_id=? AND partition=? ORDER BY last_offset LIMIT 1",
        (tid, partition),
    ).fetchone()
    d = None if row is None else rb.with_times(row[4], row[3])
    if d is None or d.backs is None:
        return 0  # none, one time for the whole batch, or damaged (reads report it)
    row_id, base, ts, _crc, payload = row
    k = sum(1 for back in d.backs if ts - back < cutoff)
    if not k or k == len(d.values):
        return 0
    first = base + d.deltas[k]
    new = rb.encode(
        d.values[k:],
        None if d.keys is None else d.keys[k:],
        None if d.headers is None else d.headers[k:],
        deltas=None if isinstance(d.deltas, range) else [x - d.deltas[k] for x in d.deltas[k:]],
        backs=d.backs[k:],
    )
    conn.execute(
        "UPDATE batches SET base_offset=?, count=?, crc=?, size=?, payload=? WHERE id=?",
        (first, len(d.values) - k, rb.checksum(new), len(new), new, row_id),
    )
    conn.execute(
        "UPDATE partitions SET first_offset=?, bytes=bytes-? WHERE topic_id=? AND partition=?",
        (first, len(payload) - len(new), tid, partition),
    )
    return k


# Compaction pages: batches read per statement, and batches (or bytes of
# them, whichever comes first) rewritten per write transaction. The write
# lock is held for one page's rewrite only.
COMPACT_PAGE = 32
COMPACT_PAGE_BYTES = 1 << 20


def compact_partition(
    read: Any, writer: Writer, tid: int, partition: int, horizon_ms: int
) -> tuple[int, int | None]:
    """Keep the latest record per key; drop tombstones older than the horizon.
    Return (records removed, timestamp of the oldest tombstone kept).

    Two passes over the partition on the read connection ``read``, a page
    of batches at a time: the first finds each key's latest offset (memory:
    one entry per distinct key, as Kafka's offset map), the second finds the
    batches that lose records and rewrites each page of them in a short
    write transaction (offsets kept, as deltas from the batch's base offset).
    A batch is re-read under the write lock before it is rewritten, so a
    concurrent change is never overwritten; a record appended after the
    first pass is only compacted by the next compaction.
    """
    latest: dict[bytes, int] = {}
    for _id, base, ts, payload in _pages(read, tid, partition):
        for delta, key, _value, _ts in _keyed(payload, ts):
            latest[key] = base + delta
    removed, oldest = 0, None
    for page in _chunked(_pages(read, tid, partition)):
        doomed: list[tuple[int, int]] = []
        for row_id, base, ts, payload in page:
            drops, kept_tombstone = _plan(base, ts, payload, latest, horizon_ms)
            if kept_tombstone is not None:
                oldest = kept_tombstone if oldest is None else min(oldest, kept_tombstone)
            if drops:
                doomed.append((row_id, base))
        if doomed:
            # Not fsynced: a power cut can only undo a rewrite, bringing
            # back records the next compaction drops again.
            removed += writer.run(
                partial(
                    _rewrite_page,
                    tid=tid,
                    partition=partition,
                    ids=doomed,
                    latest=latest,
                    horizon_ms=horizon_ms,
                ),
                fsync=False,
            )
    return removed, oldest


def _pages(read: Any, tid: int, partition: int) -> Iterator[tuple[int, int, int, bytes]]:
    """(id, base offset, ts, payload) of each intact batch, in offset order,
    fetched a page at a time. Damaged batches are left for reads to report,
    never rewritten under a fresh checksum."""
    after = -1
    while True:
        rows = read.execute(
            "SELECT id, base_offset, last_offset, ts, crc, payload FROM batches "
            "WHERE topic_id=? AND partition=? AND last_offset>? ORDER BY last_offset LIMIT ?",
            (tid, partition, after, COMPACT_PAGE),
        ).fetchall()
        for row_id, base, _last, ts, crc, payload in rows:
            if rb.checksum(payload) == crc:
                yield row_id, base, ts, payload
        if len(rows) < COMPACT_PAGE:
            return
        after = rows[-1][2]


def _chunked(
    rows: Iterator[tuple[int, int, int, bytes]],
) -> Iterator[list[tuple[int, int, int, bytes]]]:
    page: list[tuple[int, int, int, bytes]] = []
    size = 0
    for row in rows:
        page.append(row)
        size += len(row[3])
        if len(page) == COMPACT_PAGE or size >= COMPACT_PAGE_BYTES:
            yield page
            page, size = [], 0
    if page:
        yield page


def _keyed(payload: bytes, ts: int) -> Iterator[tuple[int, bytes, bytes | None, int]]:
    """(delta, key, value, time) of the batch's records that have a key."""
    d = rb.decode(payload)
    if d.keys is not None:
        for delta, key, value, when in zip(d.deltas, d.keys, d.values, _times(d, ts)):
            if key is not None:
                yield delta, key, value, when


def _times(d: rb.Decoded, ts: int) -> Iterator[int]:
    """Each record's time: the batch's, or its own in a merged batch."""
    return repeat(ts, len(d.values)) if d.backs is None else (ts - b for b in d.backs)


def _plan(
    base: int, ts: int, payload: bytes, latest: dict[bytes, int], horizon_ms: int
) -> tuple[bool, int | None]:
    """(whether the batch loses records, the time of the oldest tombstone
    it keeps)."""
    drops, kept_tombstone = False, None
    for delta, key, value, when in _keyed(payload, ts):
        if _dropped(key, value, base + delta, when, latest, horizon_ms):
            drops = True
        elif value is None and kept_tombstone is None:
            kept_tombstone = when
    return drops, kept_tombstone


def _dropped(
    key: bytes, value: bytes | None, offset: int, ts: int, latest: dict[bytes, int], horizon: int
) -> bool:
    """Whether compaction drops this keyed record, judged by the first
    pass's map: superseded by a later record of its key, or a tombstone
    past the horizon that the map knows as its key's latest (so the records
    it deleted go in the same compaction). A record appended since the
    first pass is kept: the next compaction judges it."""
    known = latest.get(key, offset)
    return known > offset or (value is None and ts < horizon and known == offset and key in latest)


def _rewrite_page(
    conn: Any,
    *,
    tid: int,
    partition: int,
    ids: list[tuple[int, int]],
    latest: dict[bytes, int],
    horizon_ms: int,
) -> int:
    """Rewrite these batches, given as (row id, base offset), that are
    still there and intact."""
    removed = freed = 0
    for row_id, base in ids:
        # The base offset too: a row id freed by retention may have been reused.
        row = conn.execute(
            "SELECT base_offset, ts, crc, payload FROM batches "
            "WHERE id=? AND topic_id=? AND partition=? AND base_offset=?",
            (row_id, tid, partition, base),
        ).fetchone()
        if row is None or rb.checksum(row[3]) != row[2]:
            continue  # gone (retention) or damaged since it was read
        gone, delta = _rewrite(conn, row_id, row[0], row[1], row[3], latest, horizon_ms)
        removed, freed = removed + gone, freed + delta
    if freed:
        conn.execute(
            "UPDATE partitions SET bytes=bytes-? WHERE topic_id=? AND partition=?",
            (freed, tid, partition),
        )
    return removed


def _rewrite(
    conn: Any,
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
        for i, (delta, key, when) in enumerate(zip(d.deltas, d.keys, _times(d, ts)))
        if key is None or not _dropped(key, d.values[i], base + delta, when, latest, horizon_ms)
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
        backs=None if d.backs is None else [d.backs[i] for i in keep],
    )
    conn.execute(
        "UPDATE batches SET last_offset=?, count=?, crc=?, size=?, payload=? WHERE id=?",
        (base + d.deltas[keep[-1]], len(keep), rb.checksum(new), len(new), new, row_id),
    )
    return n - len(keep), len(payload) - len(new)
