"""Queue contract Q1/Q2 for deliveries never handed out: ``release`` and
``subscribe``'s read-ahead go back without counting a delivery."""

from __future__ import annotations

import pytest

from ..client.client import Client
from ..errors import QueueNotFound
from ..ports.queue import lease_release
from ._base import ContractBase


class ReleaseContract(ContractBase):
    """Part of :class:`~tidings.testing.QueueContract`; every test needs the
    ``release`` capability."""
    def test_release_puts_rows_back_uncounted(self, client: Client, topic: str) -> None:
        """Q2: released message rows are ready again at their place, with the
        delivery undone: max_deliveries=1 dead-letters none of them."""
        self.need(client, "release")
        client.declare_queue(topic, max_deliveries=1, dead_letter=topic + "-dlq")
        for body in (b"a", b"b", b"c"):
            client.publish(topic, body)  # one at a time: message rows
        got = client.get(topic, 3)
        assert client.release(got[1:]) == 2
        client.ack(got[0])
        client.publish(topic, b"d")
        again = client.get(topic, 3)
        assert [d.body for d in again] == [b"b", b"c", b"d"]  # released ones first
        assert [(d.delivery_count, d.redelivered) for d in again] == [(1, False)] * 3
        client.ack(again)
        assert client.dead_letters(topic) == []
        assert client.queue_stats(topic).ready == 0

    def test_release_part_of_a_range_lease(self, client: Client, topic: str) -> None:
        """Q1/Q2: messages published together are leased as one range; part of
        the range released goes back uncounted, the rest can still be acked."""
        self.need(client, "release")
        client.declare_queue(topic, max_deliveries=1, dead_letter=topic + "-dlq")
        client.publish_batch(topic, [b"%d" % i for i in range(10)])
        got = client.get(topic, 10)
        # One receipt for the range where the engine leases ranges (SQL);
        # one per message elsewhere (amqp://): the outcome must be the same.
        assert len({d.receipt for d in got}) in (1, 10)
        assert client.release(got[5:]) == 5
        client.ack(got[:5])
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased) == (5, 0)
        again = client.get(topic, 10)
        assert [d.body for d in again] == [b"5", b"6", b"7", b"8", b"9"]
        assert {(d.delivery_count, d.redelivered) for d in again} == {(1, False)}
        client.nack(again)  # a real delivery did count: max_deliveries=1 reached
        assert len(client.dead_letters(topic)) == 5

    def test_release_of_an_ended_lease_does_nothing(self, client: Client, topic: str) -> None:
        """Q1: a lease that expired or was settled is not released again."""
        self.need(client, "release")
        client.declare_queue(topic, lease="0.2s")
        client.publish(topic, b"x")
        client.publish(topic, b"y")
        first, second = client.get(topic, 2)
        client.ack(first)
        (redelivered,) = client.get(topic, wait=5)  # second's lease ran out
        assert redelivered.id == second.id and redelivered.delivery_count == 2
        assert client.release([first, second]) == 0
        assert client.release(redelivered) == 1
        (third,) = client.get(topic)
        assert third.delivery_count == 2  # the redelivery after expiry still counts
        with pytest.raises(QueueNotFound):
            lease_release(client.engine.queues, client.features).release(
                topic + "-missing", [(1, "r")]
            )

    def test_closing_subscribe_counts_no_delivery(self, client: Client, topic: str) -> None:
        """Q2: closing subscribe() puts back what it leased ahead and never
        yielded without counting it: with max_deliveries=1 none is dead-lettered."""
        self.need(client, "release")
        client.declare_queue(topic, max_deliveries=1, dead_letter=topic + "-dlq")
        client.publish_batch(topic, [b"%d" % i for i in range(10)])
        for body in (b"r1", b"r2"):
            client.publish(topic, body)  # and some message rows
        stream = client.subscribe(topic, prefetch=12)
        first = next(stream)
        client.ack(first)
        stream.close()
        assert client.dead_letters(topic) == []
        rest = client.get(topic, 20)
        assert len(rest) == 11
        assert {(d.delivery_count, d.redelivered) for d in rest} == {(1, False)}

    def test_released_fifo_head_stays_first_in_its_group(self, client: Client, topic: str) -> None:
        """Q4: a released FIFO message is its group's next delivery again,
        uncounted; the messages behind it stay blocked until it is acked."""
        self.need(client, "release")
        self.need(client, "fifo_groups")
        client.declare_queue(topic, fifo=True, max_deliveries=1, dead_letter=topic + "-dlq")
        for body in (b"a1", b"a2"):
            client.publish(topic, body, group="a")
        (head,) = client.get(topic, 10)
        assert client.release(head) == 1
        (again,) = client.get(topic, 10)
        assert (again.body, again.delivery_count) == (b"a1", 1)
        assert client.get(topic, 10) == []
        client.ack(again)
        (nxt,) = client.get(topic, 10)
        assert nxt.body == b"a2"
