"""The queue conformance suite (Q1–Q6) on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidings.testing import QueueContract

PG = "postgresql://127.0.0.1:5432/test"


@pytest.mark.engine("memory")
class TestMemoryQueues(QueueContract):
    @pytest.fixture
    def engine_url(self) -> str:
        return "memory://"


@pytest.mark.engine("sqlite")
class TestSQLiteQueues(QueueContract):
    @pytest.fixture
    def engine_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'queues.db'}"


@pytest.mark.engine("postgresql")
class TestPostgresQueues(QueueContract):
    @pytest.fixture
    def engine_url(self, pg_schema_url: str) -> str:
        return pg_schema_url

    @pytest.fixture
    def own_connection(self) -> Callable[[], Any]:
        """Your own psycopg connection, on the default search_path: tidings
        finds its tables in the URL's schema by itself."""
        import psycopg

        return lambda: psycopg.connect(PG)
