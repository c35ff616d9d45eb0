"""The failed-event store (R2, R3) on the RabbitMQ engine: kept in the SQL
database its ``failed_store=`` option names (SQLite here, PostgreSQL in
the runtime tests), and refused, with what to add, without the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings import Client
from tidings.errors import ConfigurationError, UnsupportedFeature
from tidings.ports.failed import FailedEventsCapable, FailedFilter, failed_store
from tidings.testing import FailedEventsContract
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def amqp() -> str:
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    return AMQP


@pytest.mark.engine("rabbitmq")
class TestRabbitMQFailedEvents(FailedEventsContract):
    @pytest.fixture
    def engine_url(self, amqp: str, tmp_path: Path) -> str:
        return f"{amqp}?failed_store=sqlite:///{tmp_path / 'failed.db'}"


@pytest.mark.engine("rabbitmq")
def test_without_the_option_the_store_is_refused_saying_what_to_add(amqp: str) -> None:
    with Client(amqp) as client:
        assert isinstance(client.engine, FailedEventsCapable)
        assert client.features.failed_events == "unsupported"
        with pytest.raises(UnsupportedFeature, match=r"add failed_store=sqlite:///PATH\.db"):
            failed_store(client.engine)


@pytest.mark.engine("rabbitmq")
@pytest.mark.parametrize("bad", ["memory://", "amqp://guest:guest@127.0.0.1:5672/", "nope://x"])
def test_a_failed_store_url_that_cannot_keep_them_is_refused_at_open(amqp: str, bad: str) -> None:
    with pytest.raises(ConfigurationError, match=r"failed_store|unsupported engine URL"):
        Client(f"{amqp}?failed_store={bad}")


@pytest.mark.engine("rabbitmq")
def test_the_store_is_shared_by_engines_on_the_same_database(amqp: str, tmp_path: Path) -> None:
    """What one process parks, `tidings failed` in another finds; the SQL
    engine is opened on first use and closed with the RabbitMQ engine."""
    from tidings.testing._runtime import _event

    url = f"{amqp}?failed_store=sqlite:///{tmp_path / 'failed.db'}"
    with Client(url) as a:
        assert a.features.failed_events == "emulated"
        event_id = failed_store(a.engine).park(_event("t", source="queue", queue="q"))
    assert (tmp_path / "failed.db").exists()
    with Client(url) as b:
        assert failed_store(b.engine).get(event_id).queue == "q"


def test_every_builtin_engine_declares_what_it_provides(tmp_path: Path) -> None:
    """Features.failed_events agrees with the capability on the SQL engines."""
    for url in ("memory://", f"sqlite:///{tmp_path / 'x.db'}"):
        with Client(url) as client:
            assert client.features.failed_events == "native"
            assert failed_store(client.engine).find(FailedFilter()) == []
