"""FIFO groups (Q4) beyond the conformance suite: order across batches,
delays, nacks, dead-lettering and redrive keep each group in line."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import Client

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'f.db'}"
    with Client(url) as c:
        yield c


def fifo(client: Client, **options: object) -> str:
    name = f"fifo-{next(_names)}"
    client.declare_queue(name, fifo=True, **options)  # type: ignore[arg-type]
    return name


def drain_in_order(client: Client, q: str) -> list[bytes]:
    out: list[bytes] = []
    while got := client.get(q, 10):
        out.extend(d.body for d in got)
        client.ack(got)
    return out


def test_groups_keep_publish_order_across_batches(client: Client) -> None:
    """One message per group at a time, in publish order, whatever the batches."""
    q = fifo(client)
    client.publish_batch(q, [b"a1", b"a2"], group="a")
    client.publish_batch(q, [b"b1"], group="b")
    client.publish_batch(q, [b"a3", b"a4"], group="a")
    client.publish(q, b"free")  # no group: not held back by anyone
    first = client.get(q, 10)
    assert sorted(d.body for d in first) == [b"a1", b"b1", b"free"]
    assert client.queue_stats(q).ready == 3  # blocked but due counts as ready
    client.ack(first)
    assert drain_in_order(client, q) == [b"a2", b"a3", b"a4"]


def test_nack_with_delay_holds_the_whole_group(client: Client) -> None:
    """A nacked head comes back first; the rest of its group waits for it."""
    q = fifo(client)
    client.publish_batch(q, [b"a1", b"a2"], group="a")
    client.publish(q, b"b1", group="b")
    batch = client.get(q, 10)
    client.nack([d for d in batch if d.group == "a"], delay="0.2s")
    client.ack([d for d in batch if d.group == "b"])
    assert client.get(q, 10) == []
    (again,) = client.get(q, 10, wait=3)
    assert (again.body, again.redelivered) == (b"a1", True)
    client.ack(again)
    assert drain_in_order(client, q) == [b"a2"]


def test_a_delayed_member_keeps_its_own_due_time(client: Client) -> None:
    """When its turn comes, a delayed group member still waits until due."""
    q = fifo(client)
    client.publish(q, b"a1", group="a")
    client.publish(q, b"a2", group="a", delay="0.3s")
    client.ack(client.get(q))
    assert client.get(q) == [] and client.queue_stats(q).delayed == 1
    (late,) = client.get(q, wait=3)
    assert late.body == b"a2"


def test_dead_lettering_the_head_frees_its_group(client: Client) -> None:
    """reject, and running out of deliveries, let the next message through;
    redrive puts the dead letter back behind its group's waiting messages."""
    q = fifo(client, max_deliveries=1, dead_letter=f"dlq-{next(_names)}")
    client.publish_batch(q, [b"a1", b"a2", b"a3"], group="a")
    client.reject(client.get(q, 10))
    (second,) = client.get(q, 10)
    client.nack(second)  # its one delivery is used up: dead-lettered
    (third,) = client.get(q, 10)
    assert (second.body, third.body) == (b"a2", b"a3")
    assert client.redrive(q) == 2
    client.ack(third)
    assert drain_in_order(client, q) == [b"a1", b"a2"]


def test_lease_expiry_redelivers_the_head_before_the_rest(client: Client) -> None:
    """Q1 with Q4: a head whose lease ran out is the group's next delivery."""
    q = fifo(client, lease="0.2s")
    client.publish_batch(q, [b"a1", b"a2"], group="a")
    (first,) = client.get(q, 10)
    time.sleep(0.25)  # lease expiry is a deadline, not an event
    (again,) = client.get(q, 10)
    assert (again.id, again.delivery_count) == (first.id, 2)
    client.ack(again)
    assert drain_in_order(client, q) == [b"a2"]
