"""Spread appends on SQLite: a ``send_batch`` over many partitions is
stored as one *spread row*, merged into per-partition batches later.

Why: batches are clustered by partition, so a call that gives one record
to each of 1,000 partitions wrote 1,000 rows, 1,000 index entries in 1,000
different leaf pages (each written whole to the WAL) and 1,000 partition
rows: ~9.5 µs of CPU per record against ~0.85 into one partition. A spread
row costs one row and one index entry whatever the partitions; a merge
every ``MERGE_ROWS`` spread rows pays the per-partition costs once for
that many appends (docs/benchmarks.md, ``log.append.spread``).

Invariants (SQLite only; PostgreSQL never writes spread rows):

* A topic's *pending* records (those in spread rows) come after all of
  their partition's batches, and its ``partitions`` rows (next offset,
  bytes, last ts) count merged records only.
* While a topic has spread rows, every append to it is a spread row, a
  one-partition append too: pending records stay contiguous per partition.
* Whatever reads a partition's records or counters (a read reaching the
  end of the batches, describe, a time seek, retention, compaction) merges
  the topic's pending rows first (:func:`merge`).
* Each process keeps a topic's *head* (next offset per partition, pending
  included; its latest ts) between appends. It is trusted only while the
  topic's last spread row is the one it wrote: a row id with a random
  token, checked by the first statement of every spread append; a row
  written by another process or connection, or one rolled back, does not
  match and the head is read again from the database.

Spread row: ``directory`` holds u32 parts, then per part (ascending
partition) its partition (u32), record count (u32) and base offset (i64),
then a CRC-32 of those bytes, little-endian; ``payload`` is one record
batch (``recordbatch.py``) of all the call's records, part after part;
``crc`` is the payload's. A row whose payload fails its checksum is
merged as one damaged batch per part (reads report its offsets and say
where to seek past it, as for any damaged batch); one whose directory
fails its own cannot be placed, and its merge fails with
CorruptDataError.
"""

from __future__ import annotations

import random
import struct
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from operator import add, sub
from typing import Any

from ...errors import CorruptDataError
from ...message import EMPTY_HEADERS, Headers
from ...ports.log import AppendResult, PartitionedColumns, RecordColumns
from . import recordbatch as rb

#: A call is stored as a spread row when it gives records to at least this
#: many partitions, fewer than this many each on average (measured: at 10
#: records per partition one batch row each was still cheaper, at 4 the
#: spread row; docs/benchmarks.md).
SPREAD_PARTITIONS = 16
SPREAD_RECORDS = 8
#: A spread append merges its topic's pending rows once there are this
#: many (or this many payload bytes), inside its own transaction: the
#: per-partition costs are paid once for that many appends. Merging 16
#: rows of 1,000 records took 58 ms (64: 179 ms) for the same CPU per
#: record, and any other writer waits that long at most.
MERGE_ROWS = 16
MERGE_BYTES = 4 << 20
#: Records per merged batch at most: a read decodes a whole batch.
MERGED_RECORDS = 4096

SCHEMA = (
    "CREATE TABLE spread_batches (id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
    "token INTEGER NOT NULL, ts INTEGER NOT NULL, records INTEGER NOT NULL, "
    "crc INTEGER NOT NULL, directory BLOB NOT NULL, payload BLOB NOT NULL)",
    "CREATE INDEX spread_by_topic ON spread_batches (topic_id, id)",
)
_COUNT = struct.Struct("<I")
_DAMAGED = -1  # a batch row's crc that no payload has: reads report it damaged
_LAST_ROW = "SELECT id, token FROM spread_batches WHERE topic_id=? ORDER BY id DESC LIMIT 1"
_INSERT = (
    "INSERT INTO spread_batches(topic_id, token, ts, records, crc, directory, payload) "
    "VALUES (?,?,?,?,?,?,?) RETURNING id"
)


def is_spread(batches: Mapping[int, RecordColumns]) -> bool:
    """Whether a call is better stored as a spread row."""
    if isinstance(batches, PartitionedColumns):
        parts, records = len(batches.partitions), len(batches.flat_values)
    else:
        counts = [len(c.values) for c in batches.values() if c.values]
        parts, records = len(counts), sum(counts)
    return parts >= SPREAD_PARTITIONS and records < parts * SPREAD_RECORDS


def pending(conn: Any, tid: int) -> bool:
    """Whether the topic has spread rows not merged yet."""
    return conn.execute(_LAST_ROW, (tid,)).fetchone() is not None


@dataclass(frozen=True)
class Head:
    """A topic's append position as one process last saw it."""

    row: tuple[int, int] | None  # (id, token) of the topic's last spread row
    next: dict[int, int]  # next offset per partition, pending records included
    ts: int  # the latest ts appended to the topic
    rows: int  # pending spread rows
    size: int  # their payload bytes


class Heads:
    """Each topic's :class:`Head`, kept between this process's appends.

    Replaced whole, never changed in place, so threads appending on other
    connections (``append_in``) need no lock: a stale head fails the row
    check and is read again."""

    def __init__(self) -> None:
        self._by_topic: dict[int, Head] = {}

    def current(self, conn: Any, tid: int) -> Head | None:
        """The topic's head, checked against its last spread row; None
        when the topic no longer exists."""
        last = conn.execute(_LAST_ROW, (tid,)).fetchone()
        head = self._by_topic.get(tid)
        if last is not None and head is not None and head.row == tuple(last):
            return head
        return _load(conn, tid, last is not None)

    def put(self, tid: int, head: Head) -> None:
        self._by_topic[tid] = head

    def forget(self, tid: int) -> None:
        self._by_topic.pop(tid, None)


def _load(conn: Any, tid: int, with_pending: bool) -> Head | None:
    """Read a head from the database: merged counters plus pending rows."""
    rows = conn.execute(
        "SELECT partition, next_offset, last_ts FROM partitions WHERE topic_id=?", (tid,)
    ).fetchall()
    if not rows:
        return None
    nxt = {p: n for p, n, _ in rows}
    ts = max(t for _, _, t in rows)
    count = size = 0
    last = None
    if with_pending:
        for row_id, token, row_ts, directory, row_size in conn.execute(
            "SELECT id, token, ts, directory, length(payload) FROM spread_batches "
            "WHERE topic_id=? ORDER BY id",
            (tid,),
        ):
            parts, counts, bases = read_directory(directory, tid=tid, row_id=row_id)
            nxt.update(zip(parts, map(add, bases, counts)))
            ts, count, size, last = max(ts, row_ts), count + 1, size + row_size, (row_id, token)
    return Head(last, nxt, ts, count, size)


# ---- append -------------------------------------------------------------
def append(
    conn: Any, heads: Heads, tid: int, batches: Mapping[int, RecordColumns], now: int
) -> dict[int, AppendResult] | None:
    """Store the call as one spread row (inside the caller's write
    transaction); None when the topic no longer exists. Merges the topic
    when enough rows are pending."""
    flat = _flat(batches)
    head = heads.current(conn, tid)
    bases = _bases(head, flat.partitions)
    if bases is None:  # partitions added since the head was read
        head = _load(conn, tid, pending(conn, tid))
        bases = _bases(head, flat.partitions)
        if head is None or bases is None:
            return None
    assert head is not None
    ts = max(now, head.ts)  # a partition's times never go back (seek.py)
    nxt = dict(head.next)
    nxt.update(zip(flat.partitions, map(add, bases, flat.counts)))
    directory = _directory(flat.partitions, flat.counts, bases)
    payload = rb.encode_columns(flat.flat_values, flat.flat_keys, flat.flat_headers)
    token = random.getrandbits(62)
    crc = zlib.crc32(payload)
    (row_id,) = conn.execute(
        _INSERT, (tid, token, ts, len(flat.flat_values), crc, directory, payload)
    ).fetchone()
    heads.forget(tid)  # until the new head is in place: a failure below leaves none
    rows, size = head.rows + 1, head.size + len(payload)
    if rows >= MERGE_ROWS or size >= MERGE_BYTES:
        merge(conn, tid=tid)  # the next append reads the merged counters
    else:
        heads.put(tid, Head((row_id, token), nxt, ts, rows, size))
    # tuple.__new__ from C: an AppendResult per partition without a Python call.
    results = zip(bases, flat.counts, repeat(ts))
    return dict(zip(flat.partitions, map(tuple.__new__, repeat(AppendResult), results)))


def _bases(head: Head | None, partitions: list[int]) -> list[int] | None:
    """Each partition's next offset, None when one is not in the head."""
    try:
        return None if head is None else list(map(head.next.__getitem__, partitions))
    except KeyError:
        return None


def _flat(batches: Mapping[int, RecordColumns]) -> PartitionedColumns:
    """The call's records, partition after partition (ascending)."""
    if isinstance(batches, PartitionedColumns):
        return batches
    parts = sorted((p, c) for p, c in batches.items() if c.values)
    columns = [c for _, c in parts]
    keys = headers = None
    if any(c.keys is not None for c in columns):
        keys = list(
            chain.from_iterable(
                c.keys if c.keys is not None else repeat(None, len(c.values)) for c in columns
            )
        )
    if any(c.headers is not None for c in columns):
        headers = list(
            chain.from_iterable(
                c.headers if c.headers is not None else repeat(EMPTY_HEADERS, len(c.values))
                for c in columns
            )
        )
    return PartitionedColumns(
        [p for p, _ in parts],
        [len(c.values) for c in columns],
        list(chain.from_iterable(c.values for c in columns)),
        keys,
        headers,
    )


def _directory(partitions: list[int], counts: list[int], bases: list[int]) -> bytes:
    body = b"".join(
        (
            _COUNT.pack(len(partitions)),
            rb.column_bytes(array("I", partitions)),
            rb.column_bytes(array("I", counts)),
            rb.column_bytes(array("q", bases)),
        )
    )
    return body + _COUNT.pack(zlib.crc32(body))


def read_directory(
    directory: bytes, *, tid: int, row_id: int
) -> tuple[array[int], array[int], array[int]]:
    """(partitions, record counts, base offsets) of a spread row."""
    body = directory[: -_COUNT.size]
    if len(directory) < 2 * _COUNT.size or _COUNT.unpack_from(directory, len(body)) != (
        zlib.crc32(body),
    ):
        raise CorruptDataError(
            f"topic id {tid}: spread row {row_id}'s directory failed its checksum: which "
            "partitions and offsets its records belong to is lost, and the topic's later "
            "records cannot be merged; restore the file from a backup"
        )
    (n,) = _COUNT.unpack_from(body)
    parts, pos = rb.read_column("I", body, _COUNT.size, n)
    counts, pos = rb.read_column("I", body, pos, n)
    bases, _ = rb.read_column("q", body, pos, n)
    return parts, counts, bases


# ---- merge --------------------------------------------------------------
@dataclass
class _Gathered:
    """Every pending record of a topic, in spread row order (what
    :func:`_gather` read from its spread rows)."""

    partitions: list[int]
    times: list[int]
    values: list[bytes | None]
    keys: list[bytes | None] | None
    headers: list[Headers] | None
    end: dict[int, int]  # partition -> offset after its last pending record


def merge(conn: Any, *, tid: int) -> int:
    """Move the topic's spread rows into per-partition batches (inside the
    caller's write transaction); return how many records."""
    rows = conn.execute(
        "SELECT id, ts, crc, directory, payload FROM spread_batches WHERE topic_id=? ORDER BY id",
        (tid,),
    ).fetchall()
    if not rows:
        return 0
    with rb.PAUSE:  # many short-lived objects, no cycles (see recordbatch.py)
        return _merge_rows(conn, tid, rows)


def _merge_rows(conn: Any, tid: int, rows: list[Any]) -> int:
    """Merge intact rows together, in order; a row whose payload is
    damaged becomes one damaged batch per part, between them."""
    merged = 0
    intact: list[Any] = []
    for row in rows:
        if zlib.crc32(row[4]) == row[2]:
            intact.append(row)
            continue
        merged += _merge_intact(conn, tid, intact) + _mark_damaged(conn, tid, row)
        intact = []
    merged += _merge_intact(conn, tid, intact)
    conn.execute("DELETE FROM spread_batches WHERE topic_id=? AND id<=?", (tid, rows[-1][0]))
    return merged


def _mark_damaged(conn: Any, tid: int, row: Any) -> int:
    """Store a damaged row's parts as damaged batches at their offsets."""
    row_id, ts, _crc, directory, _payload = row
    parts, counts, bases = read_directory(directory, tid=tid, row_id=row_id)
    end = dict(zip(parts, map(add, bases, counts)))
    first = _merged_ends(conn, tid, end, Counter(dict(zip(parts, counts))))
    conn.executemany(
        rb.INSERT_BATCH,
        [
            (tid, p, first[p], first[p] + n - 1, n, ts, _DAMAGED, 0, b"")
            for p, n in zip(parts, counts)
            if n
        ],
    )
    _grow(conn, tid, end, {p: (0, ts) for p in parts})
    return sum(counts)


def _grow(conn: Any, tid: int, end: dict[int, int], grown: dict[int, tuple[int, int]]) -> None:
    """Move the partitions' counters to ``end``, past what was merged;
    ``grown``: (bytes added, latest ts) per partition."""
    conn.executemany(
        "UPDATE partitions SET next_offset=?, bytes=bytes+?, last_ts=max(last_ts, ?) "
        "WHERE topic_id=? AND partition=?",
        [(end[p], size, ts, tid, p) for p, (size, ts) in grown.items()],
    )


def _merge_intact(conn: Any, tid: int, rows: list[Any]) -> int:
    if not rows:
        return 0
    found = _gather(tid, rows)
    counts = Counter(found.partitions)
    first = _merged_ends(conn, tid, found.end, counts)
    order = sorted(range(len(found.partitions)), key=found.partitions.__getitem__)
    batches, grown = _batches(tid, found, first, counts, order)
    conn.executemany(rb.INSERT_BATCH, batches)
    _grow(conn, tid, found.end, grown)
    return len(order)


def _gather(tid: int, rows: list[Any]) -> _Gathered:
    found = _Gathered([], [], [], None, None, {})
    keyed = with_headers = False
    key_parts: list[Sequence[bytes | None]] = []
    header_parts: list[Sequence[Headers]] = []
    for row_id, ts, _crc, directory, payload in rows:
        parts, counts, bases = read_directory(directory, tid=tid, row_id=row_id)
        d = rb.decode(payload)
        n = len(d.values)
        found.partitions += chain.from_iterable(map(repeat, parts, counts))
        found.times += repeat(ts, n)
        found.values += d.values
        key_parts.append(d.keys if d.keys is not None else repeat(None, n))  # type: ignore[arg-type]
        header_parts.append(d.headers if d.headers is not None else repeat(EMPTY_HEADERS, n))  # type: ignore[arg-type]
        keyed, with_headers = keyed or d.keys is not None, with_headers or d.headers is not None
        found.end.update(zip(parts, map(add, bases, counts)))
    if keyed:
        found.keys = list(chain.from_iterable(key_parts))
    if with_headers:
        found.headers = list(chain.from_iterable(header_parts))
    return found


def _merged_ends(conn: Any, tid: int, end: dict[int, int], counts: Counter[int]) -> dict[int, int]:
    """Each partition's next offset in ``batches``, where its pending
    records start. They must end at the offset their spread rows say,
    without gap or overlap: anything else means the invariants above were
    broken, and nothing is merged."""
    merged = dict(
        conn.execute(
            "SELECT partition, next_offset FROM partitions WHERE topic_id=?", (tid,)
        ).fetchall()
    )
    for p, n in counts.items():
        if p not in merged or merged[p] + n != end[p]:
            raise CorruptDataError(
                f"topic id {tid} partition {p}: {n} pending records end at offset "
                f"{end[p]}, but its batches end at {merged.get(p)}"
            )
    return merged


def _batches(
    tid: int, found: _Gathered, first: dict[int, int], counts: Counter[int], order: list[int]
) -> tuple[list[tuple[Any, ...]], dict[int, tuple[int, int]]]:
    """The batch rows to insert, partition by partition (index order), and
    per partition (bytes added, latest ts)."""
    values = list(map(found.values.__getitem__, order))
    times = list(map(found.times.__getitem__, order))
    keys = None if found.keys is None else list(map(found.keys.__getitem__, order))
    headers = None if found.headers is None else list(map(found.headers.__getitem__, order))
    parts = sorted(counts)
    ns = list(map(counts.__getitem__, parts))
    if headers is None and max(ns) <= MERGED_RECORDS:
        payloads = rb.encode_runs(values, keys, ns, times)
        if payloads is not None:  # one batch per partition, in C-level passes
            lasts = list(map(times.__getitem__, map(sub, accumulate(ns), repeat(1))))
            bases = list(map(first.__getitem__, parts))
            rows = zip(*rb.batch_columns(tid, parts, bases, ns, lasts, payloads))
            return list(rows), dict(zip(parts, zip(map(len, payloads), lasts)))
    encode = _encoder(values, keys, headers)
    out: list[tuple[Any, ...]] = []
    grown: dict[int, tuple[int, int]] = {}
    at = 0
    for p, n_p in zip(parts, ns):
        base, size = first[p], 0
        for lo in range(at, at + n_p, MERGED_RECORDS):
            hi = min(lo + MERGED_RECORDS, at + n_p)
            ts = times[hi - 1]  # the largest: times never go back in a partition
            backs = None if times[lo] == ts else [ts - t for t in times[lo:hi]]
            payload = encode(lo, hi, backs)
            n = hi - lo
            row = (tid, p, base, base + n - 1, n, ts, rb.checksum(payload), len(payload), payload)
            out.append(row)
            base, size = base + n, size + len(payload)
        at += n_p
        grown[p] = (size, times[at - 1])
    return out, grown


def _encoder(
    values: list[bytes | None], keys: list[bytes | None] | None, headers: list[Headers] | None
) -> Callable[[int, int, list[int] | None], bytes]:
    """Encodes records ``lo``..``hi - 1`` as one batch. Without headers
    (the common case), from lengths computed once for all records: the
    general encoder's cost per call was most of a merge's."""
    if headers is None:
        vlens, _ = rb.lengths(values)
        klens = None if keys is None else rb.lengths(keys)[0]
        return lambda lo, hi, backs: rb.encode_range(vlens, klens, values, keys, (lo, hi), backs)

    def general(lo: int, hi: int, backs: list[int] | None) -> bytes:
        ks, hs = keys[lo:hi] if keys is not None else None, headers[lo:hi]
        return rb.encode(
            values[lo:hi],
            None if ks is None or ks.count(None) == len(ks) else ks,
            hs if any(hs) else None,
            backs=backs,
        )

    return general
