"""SQL engines: the embedded SQLite engine (and, later, PostgreSQL)."""

from .engine import SQLiteEngine

__all__ = ["SQLiteEngine"]
