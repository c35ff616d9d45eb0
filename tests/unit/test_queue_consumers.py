"""Push-style consumption (subscribe with a prefetch limit), sync and async,
and the dead-letter tools, on the memory and SQLite engines."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import AsyncClient, Client
from tidings.errors import ConfigurationError, QueueNotFound

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    with Client(url) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def test_subscribe_holds_at_most_prefetch_leases(client: Client) -> None:
    """subscribe leases in batches of `prefetch`, never more at once."""
    q = unique("sub")
    client.declare_queue(q)
    client.publish_batch(q, [b"%d" % i for i in range(7)])
    stream = client.subscribe(q, prefetch=3)
    first = next(stream)
    assert first.body == b"0" and client.queue_stats(q).leased == 3
    client.ack(first)
    rest = [next(stream) for _ in range(6)]
    client.ack(rest)
    assert [d.body for d in rest] == [b"%d" % i for i in range(1, 7)]
    stream.close()
    assert client.queue_stats(q).ready + client.queue_stats(q).leased == 0


def test_closing_subscribe_puts_unyielded_messages_back(client: Client) -> None:
    """Q1, consumer goes away: prefetched but unhandled messages are ready
    again at once, not only after their lease."""
    q = unique("close")
    client.declare_queue(q, lease="1h")
    client.publish_batch(q, [b"a", b"b", b"c"])
    stream = client.subscribe(q, prefetch=3)
    handled = next(stream)
    stream.close()
    stats = client.queue_stats(q)
    assert (stats.ready, stats.leased) == (2, 1)
    client.ack(handled)
    assert sorted(d.body for d in client.get(q, 5)) == [b"b", b"c"]


def test_subscribe_refuses_a_zero_prefetch(client: Client) -> None:
    with pytest.raises(ConfigurationError, match="prefetch"):
        next(client.subscribe(unique("p"), prefetch=0))


def test_dlq_purge_keeps_other_queues_dead_letters(client: Client) -> None:
    """Two queues share a dead-letter queue: purging one's dead letters
    (all, or by id) leaves the other's, and the counts follow."""
    a, b, dlq = unique("a"), unique("b"), unique("dlq")
    client.declare_queue(a, dead_letter=dlq)
    client.declare_queue(b, dead_letter=dlq)
    client.publish_batch(a, [b"a1", b"a2"])
    client.publish(b, b"b1")
    client.reject(client.get(a, 5))
    client.reject(client.get(b, 5))
    first, second = client.dead_letters(a)
    assert client.purge_dead_letters(a, [first.id]) == 1
    assert [d.body for d in client.dead_letters(a)] == [second.body]
    assert client.purge_dead_letters(a) == 1 and client.dead_letters(a) == []
    assert client.queue_stats(a).dead_lettered == 0
    assert [d.body for d in client.dead_letters(b)] == [b"b1"]
    assert client.queue_stats(dlq).ready == 1


def test_redrive_by_id_moves_only_that_message(client: Client) -> None:
    """redrive(ids) brings back just those dead letters, counters reset."""
    q = unique("r")
    client.declare_queue(q, dead_letter=q + ".dlq", max_deliveries=1)
    client.publish_batch(q, [b"x", b"y"])
    client.nack(client.get(q, 5))  # out of deliveries: both dead-lettered
    dead = {d.body: d for d in client.dead_letters(q)}
    assert dead[b"x"].headers["x-dead-letter-reason"] == "max_deliveries"
    assert client.redrive(q, [dead[b"y"].id]) == 1
    (back,) = client.get(q, 5)
    assert (back.body, back.delivery_count) == (b"y", 1)
    assert [d.body for d in client.dead_letters(q)] == [b"x"]


def test_dead_letter_tools_on_unknown_queue_raise(client: Client) -> None:
    with pytest.raises(QueueNotFound):
        client.purge_dead_letters(unique("missing"))


async def test_async_subscribe_and_dead_letter_purge() -> None:
    """AsyncClient: subscribe yields in order and puts the rest back on
    close; purge_dead_letters and queue() work through the facade."""
    async with AsyncClient("memory://") as client:
        await client.declare_queue("as", dead_letter="as.dlq", lease="1h")
        await client.publish_batch("as", [b"1", b"2", b"3"])
        stream = client.subscribe("as", prefetch=2)
        got = await anext(stream)
        await client.reject(got)
        await stream.aclose()
        stats = await client.queue_stats("as")
        assert (got.body, stats.ready, stats.leased) == (b"1", 2, 0)
        assert (await client.queue("as")).dead_letter == "as.dlq"
        assert await client.purge_dead_letters("as") == 1
        assert await client.dead_letters("as") == []


def test_redrive_takes_dead_letters_whose_dlq_lease_ran_out(client: Client) -> None:
    """A dead letter someone got from the dead-letter queue and never settled
    is redrivable once that lease is over (but not while it is held)."""
    q, dlq = unique("held"), unique("held-dlq")
    client.declare_queue(dlq, lease="0.1s")
    client.declare_queue(q, dead_letter=dlq)
    client.publish(q, b"m")
    client.reject(client.get(q))
    assert len(client.get(dlq)) == 1
    assert client.redrive(q) == 0  # leased by whoever inspects the dead-letter queue
    time.sleep(0.15)  # lease expiry is a deadline, not an event
    assert client.redrive(q) == 1
    assert [d.body for d in client.get(q)] == [b"m"]
