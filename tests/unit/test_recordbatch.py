"""The stored record batch format of the SQLite engine: lossless round-trips
and checksums that catch damage."""

from __future__ import annotations

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


@given(st.binary(max_size=40), st.one_of(st.none(), st.lists(maybe_bytes, min_size=1, max_size=1)))
def test_one_record_shortcut_writes_the_general_layout(
    value: bytes, keys: list[bytes | None] | None
) -> None:
    """A one-record batch (a batch spread over many partitions gives many)
    is encoded by a shortcut into exactly the bytes of the general encoder."""
    assert rb.encode([value], keys) == rb.encode_columns([value], keys)
    assert rb.decode(rb.encode([value], keys)).values == [value]
