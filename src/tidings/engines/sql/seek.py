"""Seek by time (L5) on the SQL engines, without a time index.

A batch's ``ts`` never decreases along a partition's offsets: an append
stores ``max(partition's last_ts, now)`` under the partition's lock, and
retention and compaction keep the ``ts`` of what stays. So "the first batch
whose ts >= T" is found by a binary search over the offset index, a probe
per halving (~20 for a million batches), instead of by an index on
``(topic, partition, ts)`` that every append had to write (dropped in
schema version 5, see ``migrations.py``).
"""

from __future__ import annotations

from typing import Any

_PROBE = (
    "SELECT base_offset, last_offset, ts FROM batches "
    "WHERE topic_id=? AND partition=? AND last_offset>=? ORDER BY last_offset LIMIT 1"
)


def offset_for_time(conn: Any, tid: int, partition: int, timestamp_ms: int) -> int:
    """The base offset of the partition's first batch stored at or after
    ``timestamp_ms``; the next offset when there is none.

    Each probe finds the batch holding offset ``mid`` (or the next one: a
    compacted partition has gaps). Invariant: the answer's last offset is
    in ``[lo, hi)``, or it is ``best``."""
    first, nxt = conn.execute(
        "SELECT first_offset, next_offset FROM partitions WHERE topic_id=? AND partition=?",
        (tid, partition),
    ).fetchone()
    lo, hi, best = first, nxt, nxt
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(_PROBE, (tid, partition, mid)).fetchone()
        if row is None:  # nothing from mid on (retention raced us): look lower
            hi = mid
        elif row[2] >= timestamp_ms:  # this batch or an earlier one
            best, hi = row[0], mid
        else:  # a later one
            lo = row[1] + 1
    return int(best)
