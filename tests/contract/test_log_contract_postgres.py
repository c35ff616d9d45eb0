"""The log conformance suite on PostgreSQL (127.0.0.1:5432, database ``test``).

Each test gets its own schema (``pg_schema_url`` in conftest.py).
"""

from __future__ import annotations

import pytest

from tidings.testing import LogContract


@pytest.mark.engine("postgresql")
class TestPostgresLog(LogContract):
    @pytest.fixture
    def engine_url(self, pg_schema_url: str) -> str:
        return pg_schema_url
