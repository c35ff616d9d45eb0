"""The amqp:// engine's claim path (issue 12): a standing consumer per queue
whose buffer claims take from, and acks sent as one ``multiple`` ack only
when that covers exactly the acked batch (RabbitMQ on 127.0.0.1:5672)."""

from __future__ import annotations

import time
import uuid

import pytest
from rabbit_clients import AMQP
from rabbit_clients import open_client as _open

from tidings import Client, Delivery
from tidings.engines.rabbitmq import feeds

pytestmark = pytest.mark.engine("rabbitmq")


@pytest.fixture
def name() -> str:
    return f"rmqf-{uuid.uuid4().hex[:10]}"


def _take(client: Client, queue: str, n: int, seconds: float = 5.0) -> list[Delivery]:
    """Claims until ``n`` came (a claim returns what has arrived so far)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + seconds
    while len(got) < n and time.monotonic() < deadline:
        got += client.get(queue, n - len(got), wait=max(0.0, deadline - time.monotonic()))
    return got


def test_acks_out_of_order_never_cover_a_nacked_delivery(
    clients: list[Client], name: str
) -> None:
    """Acking the upper half first (lower tags still unsettled: no multiple
    ack), nacking some, acking the rest: exactly the nacked come back."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"%d" % i for i in range(10)])
    got = _take(client, name, 10)
    assert len(got) == 10
    client.ack(got[6:])
    client.nack(got[:3])
    client.ack(got[3:6])
    again = _take(client, name, 3)
    assert sorted(d.body for d in again) == [b"0", b"1", b"2"]
    assert {d.delivery_count for d in again} == {2}
    client.ack(again)
    assert client.get(name, 10) == [] and client.queue_stats(name).ready == 0


def test_prefetch_is_bounded_and_the_buffer_counts_as_ready(
    clients: list[Client], name: str
) -> None:
    """A claim of 5 opens a feed with prefetch 10: the 5 it did not take wait
    in this process and still count as ready; the rest stay in RabbitMQ."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"%d" % i for i in range(30)])
    got = client.get(name, 5)
    assert [d.body for d in got] == [b"%d" % i for i in range(5)]
    stats = client.queue_stats(name)
    assert (stats.ready, stats.leased) == (25, 5)
    queues = client.engine.queues  # type: ignore[attr-defined]
    assert queues._feeds.buffered(name) <= 5 * feeds.PREFETCH_PER_CLAIMED - 5
    rest = _take(client, name, 25)
    assert sorted(int(d.body) for d in got + rest) == list(range(30))
    client.ack(got + rest)


def test_a_buffer_given_back_keeps_its_delivery_counts(clients: list[Client], name: str) -> None:
    """Messages pushed to a feed but never claimed were not delivered: when
    the client closes they go back with their count unchanged (only the ones
    leased and not acked count a delivery more)."""
    first = _open(clients)
    first.declare_queue(name)
    first.publish_batch(name, [b"%d" % i for i in range(6)])
    held = _take(first, name, 2)  # prefetch 4: two leased, two buffered
    assert first.engine.queues._feeds.buffered(name) == 2  # type: ignore[attr-defined]
    first.engine.close()  # gives the buffer back, drops the leases
    clients.remove(first)
    second = _open(clients)
    second.queue(name)
    got = _take(second, name, 6)
    counts = {d.body: d.delivery_count for d in got}
    assert counts == {b"0": 2, b"1": 2, b"2": 1, b"3": 1, b"4": 1, b"5": 1}, counts
    assert sorted(d.body for d in held) == [b"0", b"1"]
    second.ack(got)


def test_a_claim_of_one_buffers_nothing(clients: list[Client], name: str) -> None:
    """A process that dies returns its buffer counted: claiming one message at
    a time (the runtime's careful mode) leaves nothing beside it to count."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"a", b"b", b"c"])
    for body in (b"a", b"b", b"c"):
        (one,) = _take(client, name, 1)
        assert one.body == body
        assert client.engine.queues._feeds.buffered(name) == 0  # type: ignore[attr-defined]
        client.ack([one])


def test_an_idle_feed_gives_its_buffer_back(
    clients: list[Client], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed no claim used for IDLE_S stops; its buffer is ready again for
    every consumer, counts unchanged."""
    monkeypatch.setattr(feeds, "IDLE_S", 0.2)
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"a", b"b", b"c", b"d"])
    first = _take(client, name, 2)  # prefetch 4: c and d buffered
    queues = client.engine.queues  # type: ignore[attr-defined]
    assert queues._feeds.buffered(name) == 2
    other = _open(clients)
    got = _take(other, name, 2)
    assert sorted((d.body, d.delivery_count) for d in got) == [(b"c", 1), (b"d", 1)]
    assert queues._feeds.buffered(name) == 0
    other.ack(got)
    client.ack(first)


def test_deleting_a_queue_with_leases_and_buffer_leaves_acks_working(
    clients: list[Client], name: str
) -> None:
    """Deliveries of a deleted queue are forgotten: acks on another queue of
    the same channel go on working (and settle exactly what they name)."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"x", b"y", b"z"])
    assert len(_take(client, name, 2)) == 2  # two leased, one buffered
    client.delete_queue(name)
    other = name + "-b"
    client.declare_queue(other)
    client.publish_batch(other, [b"%d" % i for i in range(5)])
    got = _take(client, other, 5)
    client.ack(got)
    assert len(got) == 5 and client.get(other, 5) == []
    assert client.queue_stats(other).ready == 0


def test_replacing_or_closing_a_feed_counts_nothing_on_its_way(
    clients: list[Client], name: str
) -> None:
    """Cancelling a consumer makes a quorum queue return, counted, what was
    on its way to it. Right after an ack made room (the next message is on
    its way), a claim bigger than the feed's room replaces the feed, and the
    client closes after acking: no message no claim took is counted."""
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"%d" % i for i in range(60)])
    seen: list[Delivery] = []
    for _ in range(5):
        round_ = Client(AMQP)
        try:
            first = _take(round_, name, 1)
            round_.ack(first)
            more = round_.get(name, 10)  # the first's ack just made room
            round_.ack(more)
            seen += first + more
        finally:
            round_.close()  # gives its buffer back; its ack just made room
    rest = _take(client, name, 60 - len(seen))
    client.ack(rest)
    got = seen + rest
    assert sorted(int(d.body) for d in got) == list(range(60))
    counted = sorted(int(d.body) for d in got if d.delivery_count != 1)
    assert counted == [], f"counted though never handed out: {counted}"


def test_a_claim_gets_what_was_ready_when_its_feed_opened(
    clients: list[Client], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that opens a feed gets what the queue had ready, up to its
    size, however the pushes pause on their way: with the gap a claim
    otherwise waits for set to nothing (a loaded machine: CI once got fewer
    than 120 of 301 ready), it still waits for those it knows are coming."""
    monkeypatch.setattr(feeds, "GAP_S", 0.0)
    client = _open(clients)
    client.declare_queue(name)
    client.publish_batch(name, [b"%d" % i for i in range(300)])
    got = client.get(name, 120)
    assert len(got) == 120 and len({d.id for d in got}) == 120
    client.ack(got)
    assert client.queue_stats(name).ready == 180
