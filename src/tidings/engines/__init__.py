"""Engines and their selection by URL.

``memory://`` → :class:`MemoryEngine`; ``sqlite:///path`` →
:class:`SQLiteEngine`; ``postgresql://…`` → :class:`PostgresEngine`.
Drivers are imported only under ``tidings.engines`` (enforced by ruff's
banned-api rule).
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..ports.engine import Engine


def open_engine(url: str) -> Engine:
    """Open the engine a URL names; raises ConfigurationError for unknown schemes."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from .memory import MemoryEngine

        return MemoryEngine(url)
    if scheme == "sqlite":
        from .sql import SQLiteEngine

        return SQLiteEngine(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .sql.postgres import PostgresEngine
        except ImportError as exc:
            raise ConfigurationError(
                "the PostgreSQL engine needs psycopg: pip install 'tidings[postgres]'"
            ) from exc
        return PostgresEngine(url)
    raise ConfigurationError(
        f"unsupported engine URL {url!r}: use memory://, sqlite:///path/to/file.db or postgresql://host/db"
    )


__all__ = ["open_engine"]
