"""Fixtures shared by the contract suites."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped afterwards. Skips
    when PostgreSQL is absent, fails when TIDINGS_REQUIRE_ENGINES names it."""
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg  # a test dependency (the dev extra): never skipped

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG}?schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a failed test may leave a lock behind
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
