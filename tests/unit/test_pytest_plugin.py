"""The TIDINGS_REQUIRE_ENGINES rule: skip when a service is absent, fail
when CI says the engine is required."""

from __future__ import annotations

import socket

import pytest

from tidings.testing import require_engine, required_engines, service_reachable


def test_required_engines_parses_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests: the variable is a comma-separated, case-insensitive list."""
    monkeypatch.setenv("TIDINGS_REQUIRE_ENGINES", " PostgreSQL, rabbitmq,,nats ")
    assert required_engines() == {"postgresql", "rabbitmq", "nats"}
    monkeypatch.delenv("TIDINGS_REQUIRE_ENGINES")
    assert required_engines() == frozenset()
    assert required_engines("sqlite") == {"sqlite"}


def test_available_engine_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests: an available engine neither skips nor fails."""
    monkeypatch.setenv("TIDINGS_REQUIRE_ENGINES", "nats")
    require_engine("nats", True)


def test_absent_engine_skips_when_not_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests: locally (engine not named), an absent service skips the test."""
    monkeypatch.setenv("TIDINGS_REQUIRE_ENGINES", "postgresql")
    with pytest.raises(pytest.skip.Exception, match="'nats' unavailable: no server"):
        require_engine("nats", False, "no server")


def test_absent_engine_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests: in CI (engine named), an absent service fails the test."""
    monkeypatch.setenv("TIDINGS_REQUIRE_ENGINES", "postgresql,NATS")
    with pytest.raises(pytest.fail.Exception, match="'nats' is required"):
        require_engine("nats", False)


def test_service_reachable() -> None:
    """Tests: a listening port is reachable, a closed one is not."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert service_reachable("127.0.0.1", port)
    assert not service_reachable("127.0.0.1", port, timeout=0.2)
