"""Key → partition, stable across processes, machines and versions (L3).

Never Python's salted ``hash()``. The default is CRC-32 (C speed, in the
standard library); ``murmur2`` reproduces Kafka's default partitioner so a
key lands on the partition Kafka would choose.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

Partitioner = Callable[[bytes, int], int]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def crc32_partition(key: bytes, partitions: int) -> int:
    """The default partitioner: ``crc32(key) % partitions``."""
    return zlib.crc32(key) % partitions


def keys_in_turn(count: int, partitions: int) -> list[bytes]:
    """``count`` keys that :func:`crc32_partition` sends to every partition
    in turn (key ``j`` to partition ``j % partitions``): the widest spread
    a keyed call can have, for benchmarks and tests."""
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    share = -(-count // partitions)
    i = 0
    while min(map(len, by_partition.values())) < share:
        key = b"k%d" % i
        by_partition[crc32_partition(key, partitions)].append(key)
        i += 1
    return [by_partition[j % partitions][j // partitions] for j in range(count)]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as an unsigned 32-bit int."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & ~3
    extra = length % 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's ``toPositive(murmur2(key)) % partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


PARTITIONERS: dict[str, Partitioner] = {"crc32": crc32_partition, "murmur2": murmur2_partition}
