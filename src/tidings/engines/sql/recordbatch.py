"""The stored record batch: one row holds a producer's whole batch for one
partition (as Kafka stores record batches), so an append costs one row and a
read decodes a batch with a handful of C-level calls.

Layout (little-endian)::

    u8  version (=1)
    u8  flags            1 keys, 2 headers, 4 sparse offsets, 8 tombstones,
                         16 record times
    u32 count
    [u32 × count]        offset deltas from base_offset   (flag 4, after compaction)
    i32 × count          value lengths, -1 = None (tombstone)
    [i32 × count]        key lengths, -1 = None          (flag 1)
    [u32 × count]        header lengths, 0 = no headers   (flag 2)
    [u32 × count]        ms before the row's ts           (flag 16)
    values … keys … headers (JSON objects)

A batch appended by one call has one timestamp, the row's ``ts``. A batch
merged from several spread appends (``spread.py``) has one per record: the
row's ``ts`` is its last record's (the largest) and flag 16 stores how much
earlier each record was appended.

The row keeps a CRC-32 of the payload, checked on every read. The length
and delta columns are built with ``array`` (one C call each), which works
in the host's byte order: on a big-endian host they are byte-swapped on the
way in and out, so a stored batch is the same bytes on every host.
"""

from __future__ import annotations

import gc
import json
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain, repeat
from operator import add, mul, ne, or_, sub
from typing import Any, NamedTuple

from ...message import EMPTY_HEADERS, Headers, Record

VERSION = 1
F_KEYS, F_HEADERS, F_SPARSE, F_TOMBSTONES, F_TIMES = 1, 2, 4, 8, 16
_HEAD = struct.Struct("<BBI")
# True on big-endian hosts: arrays are swapped to and from little-endian.
_SWAP = sys.byteorder != "little"
# A stored batch's row in the ``batches`` table (appends and merges).
BATCH_COLUMNS = (
    "topic_id",
    "partition",
    "base_offset",
    "last_offset",
    "count",
    "ts",
    "crc",
    "size",
    "payload",
)
INSERT_BATCH = f"INSERT INTO batches({', '.join(BATCH_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?)"
# One record, no headers: header, value length[, key length] in one pack.
_ONE = struct.Struct("<BBIi")
_ONE_KEYED = struct.Struct("<BBIii")
# json.dumps' own escaper for str (ensure_ascii, its default; C when available).
_escape = json.encoder.encode_basestring_ascii


class Decoded(NamedTuple):
    """A batch's columns; ``deltas`` are offsets relative to the batch's
    base offset, ``backs`` ms before the batch's ts (None: all at its ts)."""

    deltas: Sequence[int]
    keys: Sequence[bytes | None] | None
    values: list[bytes | None]
    headers: Sequence[Headers] | None
    backs: Sequence[int] | None = None


def column_bytes(column: array[int]) -> bytes:
    """A column as stored: little-endian whatever the host."""
    if _SWAP:
        column = array(column.typecode, column)
        column.byteswap()
    return column.tobytes()


def lengths(items: Sequence[bytes | None]) -> tuple[array[int], bool]:
    try:
        return array("i", map(len, items)), False  # type: ignore[arg-type]
    except TypeError:
        return array("i", [-1 if v is None else len(v) for v in items]), True


def _join(items: Sequence[bytes | None], has_none: bool) -> bytes:
    present = [v for v in items if v is not None] if has_none else items
    return b"".join(present)  # type: ignore[arg-type]  # no None left


def encode(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[Headers] | None = None,
    deltas: Sequence[int] | None = None,
    backs: Sequence[int] | None = None,
) -> bytes:
    """Encode one batch; ``deltas`` only for compacted (sparse) batches,
    ``backs`` only for batches whose records have different times."""
    if len(values) == 1 and headers is None and deltas is None and backs is None:
        one = _encode_one(values[0], None if keys is None else keys[0], keys is not None)
        if one is not None:
            return one
    return encode_columns(values, keys, headers, deltas, backs)


def encode_columns(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[Headers] | None = None,
    deltas: Sequence[int] | None = None,
    backs: Sequence[int] | None = None,
) -> bytes:
    """The general encoder (:func:`encode` shortcuts one-record batches)."""
    vlens, tombs = lengths(values)
    flags = F_TOMBSTONES if tombs else 0
    parts = [b"", column_bytes(vlens)]
    tails = [_join(values, tombs)]
    if deltas is not None:
        flags |= F_SPARSE
        parts.insert(1, column_bytes(array("I", deltas)))
    if keys is not None:
        klens, knone = lengths(keys)
        flags |= F_KEYS
        parts.append(column_bytes(klens))
        tails.append(_join(keys, knone))
    if headers is not None:
        blobs = [_encode_headers(h) for h in headers]
        flags |= F_HEADERS
        parts.append(column_bytes(array("I", map(len, blobs))))
        tails.append(b"".join(blobs))
    if backs is not None:
        flags |= F_TIMES
        parts.append(column_bytes(array("I", backs)))
    parts[0] = _HEAD.pack(VERSION, flags, len(values))
    return b"".join(parts + tails)


def encode_range(
    vlens: array[int],
    klens: array[int] | None,
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None,
    span: tuple[int, int],
    backs: Sequence[int] | None,
) -> bytes:
    """Encode records ``span[0]``..``span[1] - 1`` of whole columns whose
    lengths (:func:`lengths`) were computed once for all: the same bytes as
    :func:`encode_columns` on the slices without headers, for the many
    small batches of a merge (``spread.py``). Keys all None are left out."""
    lo, hi = span
    vl = vlens[lo:hi]
    flags = F_TOMBSTONES if -1 in vl else 0
    parts = [b"", column_bytes(vl)]
    tails = [b"".join(filter(None, values[lo:hi]))]  # None and b"" add nothing
    if klens is not None and keys is not None:
        kl = klens[lo:hi]
        if kl.count(-1) != hi - lo:
            flags |= F_KEYS
            parts.append(column_bytes(kl))
            tails.append(b"".join(filter(None, keys[lo:hi])))
    if backs is not None:
        flags |= F_TIMES
        parts.append(column_bytes(array("I", backs)))
    parts[0] = _HEAD.pack(VERSION, flags, hi - lo)
    return b"".join(parts + tails)


def batch_columns(
    tid: int,
    partitions: Sequence[int],
    bases: Sequence[int],
    counts: Sequence[int],
    times: Sequence[int],
    payloads: Sequence[bytes],
) -> tuple[Iterable[Any], ...]:
    """The ``batches`` table's columns (:data:`BATCH_COLUMNS`' order) for
    one batch per partition, as iterators built in C-level passes: an
    append or a merge over 1,000 partitions built each row in Python."""
    return (
        repeat(tid, len(partitions)),
        partitions,
        bases,
        map(sub, map(add, bases, counts), repeat(1)),
        counts,
        times,
        map(checksum, payloads),
        map(len, payloads),
        payloads,
    )


def encode_runs(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None,
    counts: Sequence[int],
    times: Sequence[int] | None = None,
) -> list[bytes] | None:
    """One batch per *run* of consecutive records: the first ``counts[0]``
    records, the next ``counts[1]``, and so on; each batch the bytes
    :func:`encode` gives the run. With ``times`` (each record's, ascending
    within a run), a run whose times differ stores them as ``backs`` from
    its last, as :func:`encode_range` does.

    Every step is one C-level pass over all records or all runs, whatever
    their number: a call spread over 1,000 partitions (one batch each) paid
    a Python-level encode per partition, 2-5 µs each. None (the caller
    encodes run by run) when a value or a key is None or a run is empty:
    tombstones and keys left out need a check per run."""
    vlens, tombs = lengths(values)
    klens, knone = lengths(keys) if keys is not None else (None, False)
    if tombs or knone or not all(counts):
        return None
    bounds = list(accumulate(counts, initial=0))
    los, ends = bounds[:-1], bounds[1:]
    flags: Iterable[int] = repeat(F_KEYS if keys is not None else 0)
    timed: list[bool] | None = None
    backs = b""
    if times is not None:
        lasts = list(map(times.__getitem__, map(sub, ends, repeat(1))))
        timed = list(map(ne, map(times.__getitem__, los), lasts))
        flags = map(or_, flags, map(mul, timed, repeat(F_TIMES)))
        in_runs = chain.from_iterable(map(repeat, lasts, counts))
        backs = column_bytes(array("I", map(sub, in_runs, times)))
    columns: list[Iterable[bytes]] = [
        map(_HEAD.pack, repeat(VERSION), flags, counts),
        _runs_of(column_bytes(vlens), los, ends, 4),
    ]
    tails = [_runs_of(b"".join(values), *_byte_bounds(vlens, los, ends))]  # type: ignore[arg-type]
    if klens is not None and keys is not None:
        columns.append(_runs_of(column_bytes(klens), los, ends, 4))
        tails.append(_runs_of(b"".join(keys), *_byte_bounds(klens, los, ends)))  # type: ignore[arg-type]
    if timed is not None:  # a run whose times are all equal: an empty slice
        columns.append(_runs_of(backs, los, list(map(max, map(mul, ends, timed), los)), 4))
    return list(map(b"".join, zip(*columns, *tails)))


def _byte_bounds(lens: array[int], los: list[int], ends: list[int]) -> tuple[list[int], list[int]]:
    """Where each run's bytes start and end in its column's joined blob."""
    at = list(accumulate(lens, initial=0))
    return list(map(at.__getitem__, los)), list(map(at.__getitem__, ends))


def _runs_of(blob: bytes, los: list[int], ends: list[int], width: int = 1) -> Iterator[bytes]:
    """``blob[lo * width : end * width]`` for each run."""
    if width != 1:
        los, ends = list(map(mul, los, repeat(width))), list(map(mul, ends, repeat(width)))
    return map(blob.__getitem__, map(slice, los, ends))


def _encode_one(value: bytes | None, key: bytes | None, keyed: bool) -> bytes | None:
    """The same bytes as the general path for a one-record batch (the
    common case of a batch spread over many partitions), 7x cheaper; None
    when a tombstone or a None key needs the general path."""
    if value is None:
        return None
    if not keyed:
        return _ONE.pack(VERSION, 0, 1, len(value)) + value
    if key is None:
        return None
    return _ONE_KEYED.pack(VERSION, F_KEYS, 1, len(value), len(key)) + value + key


def _encode_headers(h: Headers) -> bytes:
    """The stored form: ``json.dumps(dict(h), separators=(",", ":"))``.

    Built from json's own string escaper (the one ``dumps`` uses, ASCII
    output), so the bytes are the same; a ``dumps`` per record was half the
    time of an outbox relay's append, this is ~5x cheaper. A key or value
    that is not a str at run time (the escaper's TypeError) takes ``dumps``
    itself, which encodes or refuses it as before."""
    if not h:
        return b""
    try:
        pairs = ",".join([_escape(k) + ":" + _escape(v) for k, v in h.items()])
    except TypeError:
        return json.dumps(dict(h), separators=(",", ":")).encode()
    return ("{" + pairs + "}").encode()


def checksum(payload: bytes) -> int:
    return zlib.crc32(payload)


def decode(payload: bytes) -> Decoded:
    """Decode a payload (checksum already verified by the caller)."""
    version, flags, n = _HEAD.unpack_from(payload)
    if version != VERSION:
        raise ValueError(f"unknown record batch version {version}")
    pos = _HEAD.size
    deltas: Sequence[int] = range(n)
    if flags & F_SPARSE:
        deltas, pos = read_column("I", payload, pos, n)
    vlens, pos = read_column("i", payload, pos, n)
    klens = hlens = backs = None
    if flags & F_KEYS:
        klens, pos = read_column("i", payload, pos, n)
    if flags & F_HEADERS:
        hlens, pos = read_column("I", payload, pos, n)
    if flags & F_TIMES:
        backs, pos = read_column("I", payload, pos, n)
    values, pos = _slices(payload, pos, vlens, bool(flags & F_TOMBSTONES))
    keys = headers = None
    if klens is not None:
        keys, pos = _slices(payload, pos, klens, True)
    if hlens is not None:
        blobs, pos = _slices(payload, pos, hlens, False)
        headers = [json.loads(b) if b else EMPTY_HEADERS for b in blobs if b is not None]
    return Decoded(deltas, keys, values, headers, backs)


def with_times(payload: bytes, crc: int) -> Decoded | None:
    """The batch decoded when it is intact and has a time per record (a
    batch merged from several spread appends); else None: one time for the
    whole batch, or damaged (an empty payload, for a damaged spread row's
    batches), which reads report."""
    if checksum(payload) != crc or not payload[1] & F_TIMES:
        return None
    return decode(payload)


def read_column(code: str, buf: bytes, pos: int, n: int) -> tuple[array[int], int]:
    out = array(code)
    end = pos + out.itemsize * n
    out.frombytes(buf[pos:end])
    if _SWAP:
        out.byteswap()
    return out, end


def _slices(
    buf: bytes, pos: int, lens: array[int], maybe_none: bool
) -> tuple[list[bytes | None], int]:
    if not maybe_none or min(lens, default=0) >= 0:
        bounds = list(accumulate(lens, initial=pos))
        return list(map(buf.__getitem__, map(slice, bounds, bounds[1:]))), bounds[-1]
    out: list[bytes | None] = []
    for n in lens:
        if n < 0:
            out.append(None)
        else:
            out.append(buf[pos : pos + n])
            pos += n
    return out, pos


def to_records(topic: str, partition: int, base: int, ts: int, d: Decoded) -> list[Record]:
    """Materialise a decoded batch as :class:`Record` objects.

    Automatic collections are held off meanwhile: a batch allocates
    thousands of tuples that can never form a cycle, and the collections
    they would trigger cost half of the decode time (measured, Python 3.11).
    See :class:`_CollectionPause` for how the application's own collector
    settings are left alone."""
    with PAUSE:
        return _records(topic, partition, base, ts, d)


class _CollectionPause:
    """Holds off automatic collections without touching ``gc.isenabled()``.

    ``gc.disable()``/``gc.enable()`` would be process-wide state shared with
    the application: an application that disabled the collector while a
    consumer thread was decoding had it re-enabled behind its back. Instead
    the first of any number of concurrent decoders raises the generation-0
    threshold and the last one puts back the value it found, unless the
    application set another threshold meanwhile (then that one stays). The
    application's enable/disable calls are never overridden."""

    _HOLD = 1 << 30  # allocations before an automatic collection: never, in a batch

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: tuple[int, ...] = ()
        self._held: tuple[int, ...] = ()

    def __enter__(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._saved = gc.get_threshold()
                if self._saved[0] > 0:  # 0 means the application turned collections off
                    self._held = (self._HOLD, *self._saved[1:])
                    gc.set_threshold(*self._held)
                else:
                    self._held = self._saved

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and gc.get_threshold() == self._held:
                gc.set_threshold(*self._saved)


PAUSE = _CollectionPause()


def _records(topic: str, partition: int, base: int, ts: int, d: Decoded) -> list[Record]:
    n = len(d.values)
    offsets = range(base, base + n) if isinstance(d.deltas, range) else [base + x for x in d.deltas]
    # tuple.__new__ straight from C: Record._make is a Python-level call.
    return list(
        map(
            tuple.__new__,
            repeat(Record, n),
            zip(
                repeat(topic, n),
                repeat(partition, n),
                offsets,
                d.keys if d.keys is not None else repeat(None, n),
                d.values,
                repeat(ts, n) if d.backs is None else [ts - b for b in d.backs],
                d.headers if d.headers is not None else repeat(EMPTY_HEADERS, n),
            ),
        )
    )
