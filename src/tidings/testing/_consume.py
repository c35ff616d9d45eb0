"""Consumers: standalone reading, seek (L5), lag, wake-up latency."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from ..client.client import Client
from ..errors import ConfigurationError
from ..message import Record, TopicPartition
from ._base import ContractBase, offsets, poll_until, wait_for_clock_past, wakeup_latency


class ConsumeContract(ContractBase):
    def test_standalone_consumer_reads_assigned_partitions_only(
        self, client: Client, topic: str
    ) -> None:
        """L5: a consumer without a group reads exactly the partitions it was
        assigned, from its start option, and cannot commit."""
        client.create_topic(topic, partitions=2)
        client.producer().send_batch(topic, [b"p0"] * 3, partition=0)
        client.producer().send_batch(topic, [b"p1"] * 2, partition=1)
        tp1 = TopicPartition(topic, 1)
        with client.consumer(topic, assign=[tp1], start="beginning") as c:
            assert c.assignment() == {tp1}
            got = poll_until([c], lambda: c.lag() == {tp1: 0})
            assert [(r.partition, r.offset, r.value) for r in got] == [(1, 0, b"p1"), (1, 1, b"p1")]
            with pytest.raises(ConfigurationError):
                c.commit()
        with client.consumer(topic, start="beginning") as every:
            got = poll_until([every], lambda: sum(every.lag().values()) == 0)
            assert sorted((r.partition, r.offset) for r in got) == [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (1, 1),
            ]

    def test_seek_beginning_end_offset_timestamp(self, client: Client, topic: str) -> None:
        """L5: seek to beginning, end, an offset and a time: the next poll
        starts exactly there."""
        client.create_topic(topic)
        tp = TopicPartition(topic, 0)
        early = client.producer().send_batch(topic, [b"a"] * 5)
        wait_for_clock_past(early[-1].timestamp)
        late = client.producer().send_batch(topic, [b"b"] * 5)
        assert late[0].timestamp > early[-1].timestamp
        with client.consumer(topic, assign=[tp], start="end") as c:
            assert c.poll(timeout=0) == []
            c.seek_to("beginning")
            assert _first(c.poll(timeout=1)) == 0
            c.seek(tp, 3)
            assert _first(c.poll(timeout=1)) == 3
            when = datetime.fromtimestamp(late[0].timestamp / 1000, tz=UTC)
            c.seek_to(when)
            assert c.position(tp) == 5
            assert _first(c.poll(timeout=1)) == 5
            c.seek_to("end")
            assert c.position(tp) == 10
            assert c.poll(timeout=0) == []
        future = datetime.fromtimestamp(time.time() + 3600, tz=UTC)
        with client.consumer(topic, assign=[tp], start=future) as c:
            assert c.position(tp) == 10

    def test_lag_per_partition(self, client: Client, topic: str) -> None:
        """L5: lag is the number of records between a consumer's position and
        the end of each assigned partition."""
        client.create_topic(topic, partitions=2)
        client.producer().send_batch(topic, [b"x"] * 7, partition=0)
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        with client.consumer(topic, start="beginning") as c:
            assert c.lag() == {tp0: 7, tp1: 0}
            got = c.poll(timeout=1, max_records=4)
            assert offsets(got) == [0, 1, 2, 3]
            assert c.lag() == {tp0: 3, tp1: 0}
            client.produce(topic, b"y", partition=1)
            assert c.lag() == {tp0: 3, tp1: 1}

    def test_poll_wakes_up_on_new_record(self, client: Client, topic: str) -> None:
        """Wake-up: a record produced while a consumer waits in poll is
        returned well before the poll's timeout."""
        client.create_topic(topic)
        got, latency = wakeup_latency(client, client, topic)
        assert [r.value for r in got] == [b"ping"]
        # poll re-checks every second anyway: only a real wake-up beats 0.5 s
        assert latency < 0.5, f"woken after {latency:.2f}s"


def _first(records: list[Record]) -> int | None:
    return records[0].offset if records else None
