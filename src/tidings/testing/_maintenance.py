"""Retention and compaction (L6)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ..client.client import Client
from ..errors import ConfigurationError
from ._base import PATIENCE_S, ContractBase, offsets, read_all, wait_for_clock_past, with_option

_HOUR_MS = 3_600_000


class MaintenanceContract(ContractBase):
    def test_retention_by_time_keeps_offsets(self, client: Client, topic: str) -> None:
        """L6: time retention removes whole records older than the limit; the
        rest keep their offsets and values, and appends continue the sequence."""
        self.need(client, "retention")
        client.create_topic(topic, retention="10s")
        old = client.producer().send_batch(topic, [f"old{i}".encode() for i in range(4)])
        wait_for_clock_past(old[-1].timestamp)
        new = client.producer().send_batch(topic, [f"new{i}".encode() for i in range(3)])
        log = client.engine.log
        assert log.enforce_retention(topic, new[0].timestamp) == 0
        removed = log.enforce_retention(topic, new[0].timestamp + 10_000)
        assert removed == 4
        kept = read_all(client, topic, 0)
        assert [(r.offset, r.value) for r in kept] == [(4, b"new0"), (5, b"new1"), (6, b"new2")]
        info = client.partitions(topic)[0]
        assert (info.first_offset, info.next_offset) == (4, 7)
        assert client.produce(topic, b"next").offset == 7
        assert offsets(log.read(topic, 0, 0, 10))[0] == 4  # reading below the start skips ahead

    def test_retention_by_size_removes_oldest_whole_records(
        self, client: Client, topic: str
    ) -> None:
        """L6: size retention removes the oldest whole records until the
        partition fits; what remains is the newest, offsets unchanged."""
        self.need(client, "retention")
        client.create_topic(topic, retention_bytes=350)
        for i in range(10):
            client.produce(topic, bytes([65 + i]) * 100)
        removed = client.enforce_retention(topic)
        kept = read_all(client, topic, 0)
        assert removed > 0 and kept
        assert removed + len(kept) == 10
        assert offsets(kept) == list(range(removed, 10))
        assert [r.value for r in kept] == [bytes([65 + i]) * 100 for i in range(removed, 10)]
        info = client.partitions(topic)[0]
        assert (info.first_offset, info.next_offset) == (removed, 10)
        assert info.size <= 350
        assert client.enforce_retention(topic) == 0

    def test_compaction_keeps_latest_per_key(self, client: Client, topic: str) -> None:
        """L6: compaction keeps the latest record per key (and keyless
        records), preserving offsets and order; a recent tombstone stays."""
        self.need(client, "compaction")
        client.create_topic(topic, compact=True, tombstone_retention="1h")
        producer = client.producer()
        producer.send_batch(
            topic,
            [b"a1", b"b1", b"a2", b"c1", None, b"free"],
            keys=["a", "b", "a", "c", "b", None],
        )
        client.produce(topic, b"a3", key="a")
        client.produce(topic, b"d1", key="d")
        removed = client.compact(topic)
        kept = read_all(client, topic, 0)
        assert [(r.offset, r.key, r.value) for r in kept] == [
            (3, b"c", b"c1"),
            (4, b"b", None),
            (5, None, b"free"),
            (6, b"a", b"a3"),
            (7, b"d", b"d1"),
        ]
        assert removed == 3
        assert client.produce(topic, b"a4", key="a").offset == 8
        assert client.compact(topic) == 1
        assert [r.offset for r in read_all(client, topic, 0)] == [3, 4, 5, 7, 8]

    def test_compaction_drops_tombstones_only_after_delay(self, client: Client, topic: str) -> None:
        """L6: a tombstone survives compaction until it is older than the
        topic's tombstone retention, then goes with the records it deleted;
        compaction says when the oldest tombstone it kept falls due."""
        self.need(client, "compaction")
        client.create_topic(topic, compact=True, tombstone_retention="1h")
        client.produce(topic, b"v", key="k")
        tomb = client.produce(topic, None, key="k")
        client.produce(topic, b"other", key="o")
        log = client.engine.log
        first = log.compact_round(topic, tomb.timestamp + _HOUR_MS - 1)
        assert (first.removed, first.tombstones_due_ms) == (1, tomb.timestamp + _HOUR_MS + 1)
        assert [(r.offset, r.value) for r in read_all(client, topic, 0)] == [
            (1, None),
            (2, b"other"),
        ]
        due = tomb.timestamp + _HOUR_MS + 1
        assert log.compact_round(topic, due - 1).removed == 0
        assert tuple(log.compact_round(topic, due)) == (1, None)
        assert [(r.offset, r.value) for r in read_all(client, topic, 0)] == [(2, b"other")]

    def test_compact_a_non_compacted_topic_is_refused(self, client: Client, topic: str) -> None:
        """L6: compacting a topic not created with compact raises
        ConfigurationError and removes nothing."""
        self.need(client, "compaction")
        client.create_topic(topic)
        client.produce(topic, b"1", key="k")
        client.produce(topic, b"2", key="k")
        with pytest.raises(ConfigurationError):
            client.engine.log.compact(topic, int(time.time() * 1000))
        assert offsets(read_all(client, topic, 0)) == [0, 1]

    def test_quiet_topic_drops_tombstones_when_due(
        self, client: Client, engine_url: str, topic: str
    ) -> None:
        """L6: background maintenance drops a tombstone once it is older than
        the tombstone retention, on a topic that receives nothing more (no
        append is needed to trigger the compaction that drops it)."""
        self.need(client, "compaction")
        with Client(with_option(engine_url, "maintenance_interval", "0.1s")) as busy:
            busy.create_topic(topic, compact=True, tombstone_retention="1s")
            busy.produce(topic, b"v", key="k")
            tomb = busy.produce(topic, None, key="k")
            busy.produce(topic, b"other", key="o")
            # The round after the appends compacts: the tombstone stays, too young.
            _wait_until(lambda: offsets(read_all(busy, topic, 0)) == [1, 2])
            assert time.time() * 1000 < tomb.timestamp + 1000, "too slow to see the first round"
            _wait_until(lambda: offsets(read_all(busy, topic, 0)) == [2])
            assert time.time() * 1000 > tomb.timestamp + 1000
            assert busy.partitions(topic)[0].next_offset == 3  # nothing was appended since


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {PATIENCE_S}s")
        time.sleep(0.02)
