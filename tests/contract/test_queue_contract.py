"""The queue conformance suite (Q1–Q6) on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.testing import QueueContract


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
