"""The stored record batch format of the SQLite engine: lossless round-trips
and checksums that catch damage."""

from __future__ import annotations

import gc
import json
import struct
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.engines.sql import recordbatch as rb

maybe_bytes = st.one_of(st.none(), st.binary(max_size=40))
header_maps = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
Batch = tuple[list[bytes | None], list[bytes | None] | None, list[dict[str, str]] | None]


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    n = draw(st.integers(min_value=0, max_value=30))
    values = draw(st.lists(maybe_bytes, min_size=n, max_size=n))
    keys = draw(st.one_of(st.none(), st.lists(maybe_bytes, min_size=n, max_size=n)))
    headers = draw(st.one_of(st.none(), st.lists(header_maps, min_size=n, max_size=n)))
    return values, keys, headers


@given(batches())
def test_round_trip(batch: Batch) -> None:
    """Records: values (incl. tombstones and empty values), keys and headers
    decode exactly as encoded."""
    values, keys, headers = batch
    d = rb.decode(rb.encode(values, keys, headers))
    assert d.values == values
    assert list(d.deltas) == list(range(len(values)))
    assert (None if d.keys is None else list(d.keys)) == keys
    if headers is None:
        assert d.headers is None
    else:
        assert d.headers is not None and [dict(h) for h in d.headers] == headers


@given(
    st.lists(st.tuples(st.integers(0, 5), maybe_bytes, st.binary(max_size=8)), max_size=20),
)
def test_sparse_round_trip(rows: list[tuple[int, bytes | None, bytes]]) -> None:
    """L6: a compacted batch keeps each record's offset (deltas from the
    base offset) through encode/decode and to_records."""
    deltas, offset = [], 0
    for gap, _, _ in rows:
        offset += gap + 1
        deltas.append(offset)
    values = [v for _, v, _ in rows]
    keys: list[bytes | None] = [k for _, _, k in rows]
    d = rb.decode(rb.encode(values, keys, None, deltas=deltas))
    assert list(d.deltas) == deltas
    records = rb.to_records("t", 3, 100, 7, d)
    assert [r.offset for r in records] == [100 + x for x in deltas]
    assert [(r.key, r.value) for r in records] == list(zip(keys, values))
    assert all((r.topic, r.partition, r.timestamp) == ("t", 3, 7) for r in records)


def test_to_records_dense_offsets_and_defaults() -> None:
    """L2: a dense batch yields consecutive offsets; no keys/headers → None/{}."""
    records = rb.to_records("t", 0, 10, 5, rb.decode(rb.encode([b"a", None, b"c"])))
    assert [(r.offset, r.key, r.value, dict(r.headers)) for r in records] == [
        (10, None, b"a", {}),
        (11, None, None, {}),
        (12, None, b"c", {}),
    ]
    assert records[1].is_tombstone


@given(st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=10), st.data())
def test_checksum_detects_any_single_bit_flip(values: list[bytes], data: st.DataObject) -> None:
    """Checksums: flipping any bit of a stored payload changes its CRC."""
    payload = rb.encode(list(values))
    i = data.draw(st.integers(0, len(payload) - 1))
    bit = data.draw(st.integers(0, 7))
    damaged = bytearray(payload)
    damaged[i] ^= 1 << bit
    assert rb.checksum(bytes(damaged)) != rb.checksum(payload)


def test_unknown_version_is_refused() -> None:
    """Format: a batch written by a future format version is not misread."""
    payload = bytearray(rb.encode([b"x"]))
    payload[0] = 99
    with pytest.raises(ValueError, match="version 99"):
        rb.decode(bytes(payload))


class _DisablesCollectorMidway(list):  # type: ignore[type-arg]
    """Values whose iteration calls ``gc.disable()``: the application
    (another thread) turning the collector off while a batch is decoded."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        gc.disable()
        return super().__iter__()


@pytest.fixture
def collector_state() -> Iterator[None]:
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("collector_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_to_records_leaves_the_collector_as_the_caller_had_it(enabled: bool) -> None:
    """to_records never changes whether the garbage collector is enabled,
    nor its thresholds, whatever the caller's state was."""
    (gc.enable if enabled else gc.disable)()
    gc.set_threshold(500, 7, 9)
    d = rb.decode(rb.encode([b"v"] * 50, [b"k"] * 50))
    assert len(rb.to_records("t", 0, 0, 1, d)) == 50
    assert (gc.isenabled(), gc.get_threshold()) == (enabled, (500, 7, 9))


@pytest.mark.usefixtures("collector_state")
def test_collector_disabled_by_the_application_during_a_decode_stays_disabled() -> None:
    """An application that disables the collector while a batch is being
    decoded (in another thread) finds it still disabled afterwards."""
    gc.enable()
    d = rb.decode(rb.encode([b"v"] * 50))
    d = d._replace(values=_DisablesCollectorMidway(d.values))
    assert len(rb.to_records("t", 0, 0, 1, d)) == 50
    assert gc.isenabled() is False


@pytest.mark.usefixtures("collector_state")
def test_concurrent_decodes_restore_the_thresholds() -> None:
    """Threads decoding at once (overlapping pauses) leave the collector's
    thresholds and enabled state as they found them."""
    gc.enable()
    gc.set_threshold(700, 10, 10)
    d = rb.decode(rb.encode([b"v" * 10] * 2000, [b"k"] * 2000))

    def work() -> None:
        for _ in range(30):
            rb.to_records("t", 0, 0, 1, d)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (gc.isenabled(), gc.get_threshold()) == (True, (700, 10, 10))


def _batch_by_hand(order: str) -> bytes:
    """The batch of ``_BY_HAND`` written field by field with explicit struct
    formats: the columns in ``order`` ('<' or '>'), the head always '<'."""
    values, keys = [b"ab", None, b""], [b"k1", b"k22", None]
    head = struct.pack("<BBI", rb.VERSION, rb.F_KEYS | rb.F_SPARSE | rb.F_TOMBSTONES, 3)
    deltas = struct.pack(f"{order}3I", 0, 5, 9)
    vlens = struct.pack(f"{order}3i", *[-1 if v is None else len(v) for v in values])
    klens = struct.pack(f"{order}3i", *[-1 if k is None else len(k) for k in keys])
    return head + deltas + vlens + klens + b"ab" + b"k1k22"


_BY_HAND = ([b"ab", None, b""], [b"k1", b"k22", None], [0, 5, 9])


def test_batch_is_little_endian_as_the_format_says() -> None:
    """The stored layout is little-endian: encode writes exactly the bytes
    built with '<' formats, and decode reads them back."""
    values, keys, deltas = _BY_HAND
    little = _batch_by_hand("<")
    assert rb.encode(values, keys, deltas=deltas) == little
    d = rb.decode(little)
    assert (d.values, list(d.keys or []), list(d.deltas)) == (values, keys, deltas)


def test_host_of_the_other_byte_order_writes_and_reads_the_same_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The swap path a host of the other byte order takes (forced here):
    columns are swapped on the way out and back on the way in, so that host
    and this one agree on the stored bytes. Forced on this host, the swapped
    columns come out as the '>' layout and decode from it losslessly."""
    values, keys, deltas = _BY_HAND
    other = "<" if sys.byteorder == "big" else ">"
    monkeypatch.setattr(rb, "_SWAP", True)
    assert rb.encode(values, keys, deltas=deltas) == _batch_by_hand(other)
    d = rb.decode(_batch_by_hand(other))
    assert (d.values, list(d.keys or []), list(d.deltas)) == (values, keys, deltas)


@given(st.binary(max_size=40), st.one_of(st.none(), st.lists(maybe_bytes, min_size=1, max_size=1)))
def test_one_record_shortcut_writes_the_general_layout(
    value: bytes, keys: list[bytes | None] | None
) -> None:
    """A one-record batch (a batch spread over many partitions gives many)
    is encoded by a shortcut into exactly the bytes of the general encoder."""
    assert rb.encode([value], keys) == rb.encode_columns([value], keys)
    assert rb.decode(rb.encode([value], keys)).values == [value]


def _json_headers(h: dict[str, str]) -> bytes:
    """How headers have been stored since format version 1."""
    return json.dumps(h, separators=(",", ":")).encode()


_TRICKY = [
    {"x-idempotency-key": "outbox:ab12:default:42"},
    {"a": "", "": "b", 'q"uo\\te': "tab\tnl\ncr\r\x00\x1f\x7f"},
    {"é": "ünïcode \u2028 \U0001f600", "lone": "\ud800"},
    {"z": "1", "a": "2", "m": "3"},  # insertion order kept, not sorted
]


@pytest.mark.parametrize("headers", _TRICKY)
def test_headers_are_stored_as_they_always_were(headers: dict[str, str]) -> None:
    """The stored header bytes are json.dumps' compact ASCII form, so batches
    written before and after read alike; and they decode to the same map."""
    payload = rb.encode_columns([b"v"], headers=[headers])
    blob = _json_headers(headers)
    assert payload.endswith(b"v" + blob)
    assert rb.decode(payload).headers == [headers]


@given(st.lists(header_maps, min_size=1, max_size=5))
def test_any_str_headers_encode_to_the_json_bytes(maps: list[dict[str, str]]) -> None:
    payload = rb.encode_columns([b""] * len(maps), headers=maps)
    assert payload.endswith(b"".join(_json_headers(h) for h in maps if h))


def test_headers_not_str_to_str_keep_json_s_own_encoding() -> None:
    """Headers typed str -> str but holding other values at run time are
    stored as json.dumps stores them (and refused as it refuses them)."""
    odd = {"n": 1, "f": None, "b": True}
    payload = rb.encode_columns([b"v"], headers=[odd])  # type: ignore[list-item]
    assert payload.endswith(b'{"n":1,"f":null,"b":true}')
    with pytest.raises(TypeError):
        rb.encode_columns([b"v"], headers=[{"raw": b"bytes"}])  # type: ignore[list-item]


def test_str_headers_are_encoded_without_a_json_dumps_per_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A json.dumps per record was half of the outbox relay's append time:
    str -> str headers (every header the API accepts) take the direct path."""

    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("json.dumps called for str headers")

    monkeypatch.setattr(json, "dumps", refuse)
    payload = rb.encode_columns([b"v"] * 2, headers=[_TRICKY[0], _TRICKY[1]])
    assert rb.decode(payload).headers == [_TRICKY[0], _TRICKY[1]]


@given(batches(), st.data())
def test_record_times_round_trip(batch: Batch, data: st.DataObject) -> None:
    """A merged batch (spread.py) keeps each record's time: ``backs`` ms
    before the row's ts, decoded into each Record's timestamp."""
    values, keys, headers = batch
    backs = data.draw(
        st.lists(st.integers(0, 2**32 - 1), min_size=len(values), max_size=len(values))
    )
    d = rb.decode(rb.encode(values, keys, headers, backs=backs))
    assert list(d.backs or []) == backs and d.values == values
    records = rb.to_records("t", 0, 10, 5_000_000_000, d)
    assert [r.timestamp for r in records] == [5_000_000_000 - b for b in backs]


@given(batches(), st.data())
def test_encode_range_writes_what_encode_columns_writes(batch: Batch, data: st.DataObject) -> None:
    """The merge's encoder (lengths computed once for all records) gives
    the bytes of the general encoder on the slice; a slice whose keys are
    all None is stored without keys, as a call without keys is."""
    values, keys, _ = batch
    lo = data.draw(st.integers(0, len(values)))
    hi = data.draw(st.integers(lo, len(values)))
    backs = data.draw(
        st.one_of(st.none(), st.lists(st.integers(0, 99), min_size=hi - lo, max_size=hi - lo))
    )
    vlens = rb.lengths(values)[0]
    klens = None if keys is None else rb.lengths(keys)[0]
    got = rb.encode_range(vlens, klens, values, keys, (lo, hi), backs)
    ks = None if keys is None or keys[lo:hi].count(None) == hi - lo else keys[lo:hi]
    assert got == rb.encode_columns(values[lo:hi], ks, None, None, backs)


@given(st.data())
def test_encode_runs_writes_what_the_one_batch_encoders_write(data: st.DataObject) -> None:
    """The many-batch encoder gives, for each run, the bytes of
    :func:`rb.encode` on the run; with times, those of ``encode_range``
    with backs from the run's last time (none when its times are all
    equal); and each decodes to the run's records and times."""
    counts = data.draw(st.lists(st.integers(1, 6), max_size=8))
    n = sum(counts)
    values = data.draw(st.lists(st.binary(max_size=12), min_size=n, max_size=n))
    keys = data.draw(st.one_of(st.none(), st.lists(st.binary(max_size=5), min_size=n, max_size=n)))
    times: list[int] = []
    for c in counts:  # ascending within a run, anything between runs
        start = data.draw(st.integers(0, 10**12))
        times += sorted(start + data.draw(st.integers(0, 3)) for _ in range(c))
    untimed = rb.encode_runs(values, keys, counts)
    timed = rb.encode_runs(values, keys, counts, times)
    assert untimed is not None and timed is not None and len(timed) == len(counts)
    vlens, klens = rb.lengths(values)[0], None if keys is None else rb.lengths(keys)[0]
    lo = 0
    for c, plain, payload in zip(counts, untimed, timed):
        hi, last = lo + c, times[lo + c - 1]
        assert plain == rb.encode(values[lo:hi], None if keys is None else keys[lo:hi])
        backs = None if times[lo] == last else [last - t for t in times[lo:hi]]
        assert payload == rb.encode_range(vlens, klens, values, keys, (lo, hi), backs)
        d = rb.decode(payload)
        assert d.values == values[lo:hi] and list(d.keys or []) == (keys or [])[lo:hi]
        assert [last - b for b in d.backs or [0] * c] == times[lo:hi]
        lo = hi


def test_encode_runs_leaves_tombstones_missing_keys_and_empty_runs_to_the_caller() -> None:
    """A None value or key, or an empty run, needs a check per run: the
    caller encodes those run by run."""
    assert rb.encode_runs([b"a", None], None, [2]) is None
    assert rb.encode_runs([b"a", b"b"], [b"k", None], [1, 1]) is None
    assert rb.encode_runs([b"a"], None, [1, 0]) is None
