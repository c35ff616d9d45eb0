"""L3: key → partition is stable everywhere and Kafka-compatible with murmur2."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.partitioner import PARTITIONERS, crc32_partition, murmur2, murmur2_partition

# Kafka's own test vectors (Utils.murmur2 → toPositive → % 1000).
KAFKA_VECTORS = [
    (b"", 681),
    (b"a", 524),
    (b"ab", 434),
    (b"abc", 107),
    (b"123456789", 566),
    (b"\x00 ", 742),
]


@pytest.mark.parametrize(("key", "partition"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(key: bytes, partition: int) -> None:
    """L3: murmur2 places keys on the partition Kafka's default partitioner picks."""
    assert murmur2_partition(key, 1000) == partition


def test_murmur2_is_unsigned_32_bit() -> None:
    """L3: murmur2 returns an unsigned 32-bit hash for every tail length."""
    for n in range(12):
        h = murmur2(bytes(range(n)))
        assert 0 <= h < 2**32


def test_crc32_is_zlib_crc32() -> None:
    """L3: the default partitioner is crc32(key) % n (documented, portable)."""
    assert crc32_partition(b"booking-42", 7) == zlib.crc32(b"booking-42") % 7
    assert crc32_partition(b"", 3) == 0


def test_partitioners_registry() -> None:
    """L3: both partitioners are selectable by name."""
    assert PARTITIONERS["crc32"] is crc32_partition
    assert PARTITIONERS["murmur2"] is murmur2_partition


@given(key=st.binary(max_size=64), n=st.integers(min_value=1, max_value=10_000))
def test_partition_in_range_and_deterministic(key: bytes, n: int) -> None:
    """L3: every partitioner returns a partition in range, the same each call."""
    for fn in PARTITIONERS.values():
        p = fn(key, n)
        assert 0 <= p < n
        assert fn(key, n) == p


def test_placement_does_not_depend_on_hash_seed() -> None:
    """L3: another process with a different PYTHONHASHSEED places keys the
    same way (never Python's salted hash())."""
    keys = [f"key-{i}".encode() for i in range(20)]
    here = [(crc32_partition(k, 13), murmur2_partition(k, 13)) for k in keys]
    code = (
        "from tidings.partitioner import crc32_partition as c, murmur2_partition as m\n"
        "keys=[f'key-{i}'.encode() for i in range(20)]\n"
        "print([(c(k, 13), m(k, 13)) for k in keys])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(here)
