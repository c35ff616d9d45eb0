"""``publish_batch`` with per-message headers, idempotency keys and groups
(what the outbox relay needs to publish through the client)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import AsyncClient, Client, ConfigurationError

_names = itertools.count()


@pytest.fixture(params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'b.db'}"
    with Client(url) as c:
        yield c


def queue(client: Client, **options: Any) -> str:
    name = f"pb-{next(_names)}"
    client.declare_queue(name, **options)
    return name


def test_each_message_gets_its_own_headers_and_idempotency_key(client: Client) -> None:
    """Q3 per message: a key seen before (in an earlier call or earlier in
    the same batch) stores nothing and gives back the original id."""
    q = queue(client)
    first = client.publish(q, b"a", idempotency_key="k-a")
    ids = client.publish_batch(
        q,
        [b"a again", b"b", b"c", b"b again"],
        headers=[{"n": "1"}, {"n": "2"}, {}, {"n": "4"}],
        idempotency_keys=["k-a", "k-b", None, "k-b"],
    )
    assert ids[0] == first and ids[3] == ids[1]
    got = client.get(q, 10)
    assert [(d.body, dict(d.headers)) for d in got] == [
        (b"a", {}),
        (b"b", {"n": "2"}),
        (b"c", {}),
    ]


def test_one_headers_mapping_still_goes_to_every_message(client: Client) -> None:
    q = queue(client)
    client.publish_batch(q, [b"x", b"y"], headers={"h": "v"})
    assert [dict(d.headers) for d in client.get(q, 10)] == [{"h": "v"}, {"h": "v"}]


def test_groups_per_message_order_each_group(client: Client) -> None:
    """Q4 per message: one message per group at a time, in publish order."""
    q = queue(client, fifo=True)
    client.publish_batch(q, [b"a1", b"b1", b"a2", b"free"], groups=["a", "b", "a", None])
    first = client.get(q, 10)
    assert sorted(d.body for d in first) == [b"a1", b"b1", b"free"]
    client.ack(first)
    assert [d.body for d in client.get(q, 10)] == [b"a2"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("idempotency_keys", ["k1"]),
        ("idempotency_keys", ["k1", "k2", "k3"]),
        ("headers", [{"a": "b"}]),
        ("groups", ["g", "g", "g"]),
    ],
)
def test_a_length_mismatch_names_the_argument_and_stores_nothing(
    client: Client, option: str, value: list[Any]
) -> None:
    q = queue(client, fifo=option == "groups")
    with pytest.raises(ConfigurationError, match=f"^{option}: {len(value)} values for 2 bodies"):
        client.publish_batch(q, [b"x", b"y"], **{option: value})
    assert client.queue_stats(q).ready == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("idempotency_keys", "ab"),  # a str is a sequence: one character per message
        ("groups", "ab"),
        ("idempotency_keys", [1, 2]),
        ("groups", [b"a", b"b"]),
        ("headers", ["h", "v"]),
    ],
)
def test_per_message_values_of_the_wrong_kind_are_refused(
    client: Client, option: str, value: Any
) -> None:
    q = queue(client, fifo=option == "groups")
    with pytest.raises(ConfigurationError, match=option):
        client.publish_batch(q, [b"x", b"y"], **{option: value})
    assert client.queue_stats(q).ready == 0


def test_group_and_groups_together_are_refused(client: Client) -> None:
    q = queue(client, fifo=True)
    with pytest.raises(ConfigurationError, match=r"group.*groups"):
        client.publish_batch(q, [b"x"], group="a", groups=["a"])


async def test_the_async_twin_takes_the_same_options() -> None:
    async with AsyncClient("memory://") as client:
        await client.declare_queue("apb")
        ids = await client.publish_batch(
            "apb", [b"1", b"1 again"], headers=[{"n": "1"}, {}], idempotency_keys=["k", "k"]
        )
        assert ids[0] == ids[1]
        (got,) = await client.get("apb", 10)
        assert dict(got.headers) == {"n": "1"}
        with pytest.raises(ConfigurationError, match="idempotency_keys"):
            await client.publish_batch("apb", [b"2"], idempotency_keys=["a", "b"])
