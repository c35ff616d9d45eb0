"""Seek by time (L5) on the SQL engines, without a time index.

A batch's ``ts`` never decreases along a partition's offsets: an append
stores ``max(partition's last_ts, now)`` under the partition's lock, and
retention and compaction keep the ``ts`` of what stays. So "the first batch
whose ts >= T" is found by a binary search over the offset index (~20
index probes for a million batches) instead of by an index on
``(topic, partition, ts)`` that every append had to write (dropped in
schema version 5, see ``migrations.py``).

The search runs inside the database as one recursive statement (the same
text for both dialects): one round trip on PostgreSQL, one snapshot.
Each step probes the batch holding offset ``mid`` (or the next one: a
compacted partition has gaps). Invariant: the answer's last offset is in
``[lo, hi)``, or it is ``best``; the step with ``lo >= hi`` holds it.
"""

from __future__ import annotations

from typing import Any

from . import recordbatch as rb

_MID = "(s.lo + s.hi) / 2"
_HIT = "m.ts >= ?"  # the probed batch is at or after the time
_SEEK = f"""
WITH RECURSIVE s(lo, hi, best) AS (
    SELECT first_offset, next_offset, next_offset FROM partitions
    WHERE topic_id=? AND partition=?
  UNION ALL
    SELECT CASE WHEN m.ts IS NULL OR {_HIT} THEN s.lo ELSE m.last_offset + 1 END,
           CASE WHEN m.ts IS NULL OR {_HIT} THEN {_MID} ELSE s.hi END,
           CASE WHEN {_HIT} THEN m.base_offset ELSE s.best END
    FROM s LEFT JOIN batches m
      ON m.topic_id=? AND m.partition=? AND m.last_offset=(
         SELECT last_offset FROM batches
         WHERE topic_id=? AND partition=? AND last_offset>={_MID}
         ORDER BY last_offset LIMIT 1)
    WHERE s.lo < s.hi
)
SELECT best FROM s WHERE s.lo >= s.hi
"""


def offset_for_time(conn: Any, tid: int, partition: int, timestamp_ms: int) -> int:
    """The offset of the partition's first record stored at or after
    ``timestamp_ms``; the next offset when there is none."""
    at, when = (tid, partition), timestamp_ms
    row = conn.execute(_SEEK, (*at, when, when, when, *at, *at)).fetchone()
    return _within(conn, tid, partition, int(row[0]), when)


def _within(conn: Any, tid: int, partition: int, base: int, when: int) -> int:
    """The first record at or after ``when`` in the batch at ``base``: a
    batch merged from several spread appends (``spread.py``) has a time per
    record, and its row's ts is its last record's."""
    row = conn.execute(
        "SELECT base_offset, ts, crc, payload FROM batches "
        "WHERE topic_id=? AND partition=? AND last_offset>=? ORDER BY last_offset LIMIT 1",
        (tid, partition, base),
    ).fetchone()
    if row is None or row[0] != base:
        return base  # the log's end
    d = rb.with_times(bytes(row[3]), row[2])
    if d is None or d.backs is None:
        return base  # one time for the whole batch (or damaged: reads report it)
    return base + next(
        (delta for delta, back in zip(d.deltas, d.backs) if row[1] - back >= when), 0
    )
