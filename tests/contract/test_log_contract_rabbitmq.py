"""The log conformance suite on RabbitMQ streams (amqp://, port 5552).

Skips when RabbitMQ's stream port is closed; fails instead when
TIDINGS_REQUIRE_ENGINES names rabbitmq. Each test's topics carry its unique
name; the client fixture deletes every topic and group left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings import Client
from tidings.testing import LogContract
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.mark.engine("rabbitmq")
class TestRabbitMQLog(LogContract):
    @pytest.fixture
    def engine_url(self) -> str:
        reachable = service_reachable("127.0.0.1", 5672) and service_reachable("127.0.0.1", 5552)
        require_engine("rabbitmq", reachable, "RabbitMQ with the stream plugin (5672, 5552)")
        return AMQP

    @pytest.fixture
    def client(self, engine_url: str, topic: str) -> Iterator[Client]:
        client = Client(engine_url)
        try:
            yield client
        finally:
            cleanup(client, topic)
            client.close()

    # RabbitMQ applies retention itself, per segment, when a segment fills:
    # enforce_retention(now) cannot drop exactly the records past a given
    # time or size. The segment-granular behaviour is tested in
    # tests/integration/test_rabbitmq_streams.py (retention arguments).
    _SEGMENTS = "RabbitMQ streams retain per segment, not per record (see docs/rabbitmq.md)"

    @pytest.mark.skip(reason=_SEGMENTS)
    def test_retention_by_time_keeps_offsets(self) -> None: ...

    @pytest.mark.skip(reason=_SEGMENTS)
    def test_retention_by_size_removes_oldest_whole_records(self) -> None: ...


def cleanup(client: Client, stem: str) -> None:
    """Delete the topics and groups whose names carry ``stem`` (the test's)."""
    suffix = stem[-8:]
    for config in client.topics():
        if suffix in config.name:
            client.delete_topic(config.name)
    for group in client.groups():
        if suffix in group:
            client.engine.log.delete_group(group)
