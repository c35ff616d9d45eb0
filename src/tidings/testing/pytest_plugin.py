"""The pytest side of the conformance suite: the ``TIDINGS_REQUIRE_ENGINES`` rule.

Engines that need a service (PostgreSQL, RabbitMQ, NATS …) skip their tests
when the service is absent, so ``pytest`` passes on a laptop with nothing
installed; CI sets ``TIDINGS_REQUIRE_ENGINES=postgresql,rabbitmq,…`` and an
absent service then *fails* the tests instead of hiding them::

    from tidings.testing import require_engine, service_reachable

    @pytest.fixture
    def engine_url():
        require_engine("postgresql", service_reachable("127.0.0.1", 5432))
        return "postgresql://127.0.0.1/test"

Load it with ``pytest_plugins = ["tidings.testing.pytest_plugin"]`` to get
the ``engine`` marker registered.
"""

from __future__ import annotations

import os
import socket

import pytest

ENV_VAR = "TIDINGS_REQUIRE_ENGINES"


def required_engines(value: str | None = None) -> frozenset[str]:
    """The engine names in ``TIDINGS_REQUIRE_ENGINES`` (comma-separated,
    case-insensitive, blanks ignored); ``value`` overrides the variable."""
    raw = os.environ.get(ENV_VAR, "") if value is None else value
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def require_engine(name: str, available: bool, why: str = "") -> None:
    """Skip the calling test when ``available`` is false, unless the engine
    is named in ``TIDINGS_REQUIRE_ENGINES``: then fail it.

    ``why`` says what is missing (shown in the skip/fail message)."""
    if available:
        return
    detail = why or "its service is not reachable"
    if name.lower() in required_engines():
        pytest.fail(
            f"engine {name!r} is required ({ENV_VAR} names it) but unavailable: {detail}",
            pytrace=False,
        )
    pytest.skip(f"engine {name!r} unavailable: {detail} (set {ENV_VAR}={name} to fail instead)")


def service_reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to ``host:port`` succeeds within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine(name): the test runs against the named engine (memory, sqlite, …)"
    )
