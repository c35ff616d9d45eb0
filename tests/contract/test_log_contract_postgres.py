"""The log conformance suite on PostgreSQL (127.0.0.1:5432, database ``test``).

Each test gets its own schema (``pg_schema_url`` in conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tidings.testing import LogContract

PG = "postgresql://127.0.0.1:5432/test"


@pytest.mark.engine("postgresql")
class TestPostgresLog(LogContract):
    @pytest.fixture
    def engine_url(self, pg_schema_url: str) -> str:
        return pg_schema_url

    @pytest.fixture
    def own_connection(self) -> Callable[[], Any]:
        """Your own psycopg connection, on the default search_path: tidings
        finds its tables in the URL's schema by itself."""
        import psycopg

        return lambda: psycopg.connect(PG)
