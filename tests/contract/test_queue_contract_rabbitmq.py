"""The queue conformance suite on RabbitMQ (amqp://, phase 1: quorum queues).

Skips when RabbitMQ is absent; fails instead when TIDINGS_REQUIRE_ENGINES
names rabbitmq. Each test's queues carry its unique name; the engine deletes
every queue it declared (and its delay and catalog queues) afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings import Client
from tidings.testing import QueueContract
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.mark.engine("rabbitmq")
class TestRabbitMQQueues(QueueContract):
    @pytest.fixture
    def engine_url(self) -> str:
        require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
        return AMQP

    @pytest.fixture
    def client(self, engine_url: str, topic: str) -> Iterator[Client]:
        client = Client(engine_url)
        try:
            yield client
        finally:
            client.engine.queues.delete_declared()  # type: ignore[attr-defined]
            if topic in [t.name for t in client.topics()]:  # topics live on streams
                client.delete_topic(topic)
            client.close()
