"""The application database the outbox tests write to: SQLite or PostgreSQL
(a unique schema per test), with the caller's own connections."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tidings.partitioner import crc32_partition
from tidings.testing.pytest_plugin import require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


class AppDb:
    """``url`` for the outbox API, ``engine_url`` for the destination engine,
    ``connect()`` for the caller's own connection (not in a transaction),
    ``begin`` the statement that opens a write transaction."""

    def __init__(self, kind: str, url: str, engine_url: str, schema: str | None = None) -> None:
        self.kind, self.url, self.engine_url, self.schema = kind, url, engine_url, schema
        self.begin = "BEGIN IMMEDIATE" if kind == "sqlite" else "BEGIN"

    def connect(self) -> Any:
        if self.kind == "sqlite":
            path = self.url.split("sqlite:///", 1)[1]
            return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        import psycopg

        conn = psycopg.connect(PG, autocommit=True)
        conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def sqlalchemy_url(self, driver_async: bool = False) -> str:
        if self.kind == "sqlite":
            path = self.url.split("sqlite:///", 1)[1]
            return f"sqlite+{'aiosqlite' if driver_async else 'pysqlite'}:///{path}"
        return "postgresql+psycopg://127.0.0.1:5432/test"


def keys_on_shards(shards: int, count: int) -> list[str]:
    """One key per shard 0..count-1 (the writer's shard is crc32 % shards)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < count:
        key = f"key-{i}"
        found.setdefault(crc32_partition(key.encode(), shards), key)
        i += 1
    return [found[s] for s in range(count)]


def app_db(kind: str, tmp_path: Path) -> Iterator[AppDb]:
    if kind == "sqlite":
        yield AppDb(
            "sqlite", f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'bus.db'}"
        )
        return
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    import psycopg

    schema = f"ob_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG}?schema={schema}"
    yield AppDb("postgresql", url, url, schema)
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
