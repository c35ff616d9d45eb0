"""Optional queue capabilities: an engine that declares one unsupported gets
UnsupportedFeature from the client, and the conformance suite skips its tests
as feature skips (no RabbitMQ needed: a memory engine that declares less)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tidings import Client, UnsupportedFeature
from tidings.engines.memory import MemoryEngine
from tidings.features import QUEUE_CAPABILITIES, Features
from tidings.ports.queue import FullQueueEngine, lease_extension

LESS = dataclasses.replace(
    MemoryEngine.features, **{name: "unsupported" for name in QUEUE_CAPABILITIES}
)


@pytest.fixture
def client() -> Iterator[Client]:
    engine = MemoryEngine()
    engine.features = LESS  # type: ignore[misc]
    with Client(engine=engine) as c:
        yield c


def test_client_refuses_what_the_engine_does_not_declare(client: Client) -> None:
    client.declare_queue("q", dead_letter="q-dlq")
    client.publish("q", b"x")
    (d,) = client.get("q")
    for call in (
        lambda: client.extend_lease(d, "5s"),
        lambda: client.release(d),
        lambda: client.dead_letters("q"),
        lambda: client.redrive("q"),
        lambda: client.purge_dead_letters("q"),
    ):
        with pytest.raises(UnsupportedFeature, match="does not support"):
            call()
    assert client.get("q", wait=0.2) == []  # a waiting get still works: it polls
    client.ack(d)


def test_full_engines_implement_every_capability() -> None:
    engine = MemoryEngine()
    try:
        assert isinstance(engine.queues, FullQueueEngine)
        assert lease_extension(engine.queues, engine.features) is engine.queues
    finally:
        engine.close()


def test_durability_levels_are_declared() -> None:
    assert Features().durability == "fsync" and MemoryEngine.features.durability == "none"
    assert Features(durability="quorum").as_dict()["durability"] == "quorum"
