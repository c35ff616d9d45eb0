"""Schema upgrades (``tidings migrate``) and PostgreSQL housekeeping: a
database created by an older tidings is upgraded in place, and tables that
churn are vacuumed by the maintenance round even where autovacuum is off."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tidings import Client
from tidings.engines.sql.migrations import SCHEMA_VERSION
from tidings.engines.sql.postgres import PgConnection, split_url, vacuum_churned
from tidings.errors import ConfigurationError

PG = "postgresql://127.0.0.1:5432/test"


def _one(query: str, *params: object) -> tuple[Any, ...] | None:
    """One row of a catalog query, on a connection of its own."""
    with psycopg.connect(PG, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()


def _v1_script(dialect: str) -> str:
    return resources.files("tidings.engines.sql").joinpath(f"schema_{dialect}.sql").read_text()


def test_sqlite_v1_file_is_upgraded_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(_v1_script("sqlite"))  # what tidings 0.1 created
    conn.close()
    with Client(f"sqlite:///{path}") as client:
        assert client.engine.log.schema_version() == SCHEMA_VERSION  # type: ignore[attr-defined]
        client.declare_queue("q")
        client.publish("q", b"still works")
        assert [d.body for d in client.get("q", 1)] == [b"still works"]


def test_postgres_v1_schema_is_upgraded_on_open(pg_schema_url: str) -> None:
    schema = pg_schema_url.rsplit("=", 1)[1]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        for statement in _v1_script("postgres").split(";"):
            if statement.strip():
                conn.execute(statement)
        assert conn.execute(
            "SELECT value FROM tidings_meta WHERE key='schema_version'"
        ).fetchone() == ("1",)
    # Several clients start at once on the old schema: the advisory lock
    # lets one upgrade; the others wait, then find it done.
    versions: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with Client(pg_schema_url) as client:
                versions.append(client.engine.log.schema_version())  # type: ignore[attr-defined]
        except BaseException as exc:  # collected: a thread's failure is otherwise lost
            errors.append(exc)

    starters = [threading.Thread(target=start) for _ in range(4)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert not errors, errors[0]
    assert versions == [SCHEMA_VERSION] * 4
    options = _one(
        "SELECT reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'queues'",
        schema,
    )
    assert options is not None and "fillfactor=30" in options[0]


def test_churned_queue_table_is_vacuumed(pg_schema_url: str) -> None:
    conninfo, schema = split_url(pg_schema_url)
    with Client(pg_schema_url) as client:
        client.declare_queue("churn", ttl="1h")  # a message row each (general.fits)
        for _ in range(12):
            client.publish_batch("churn", [b"x" * 64] * 1000)
        while got := client.get("churn", 500):
            client.ack(got)

        vacuumed: list[str] = []
        deadline = time.monotonic() + 10  # statistics reach pg_stat within about a second
        while "messages" not in vacuumed and time.monotonic() < deadline:
            vacuumed = vacuum_churned(lambda: PgConnection.open(conninfo, schema))
            time.sleep(0.2)
        assert "messages" in vacuumed
        dead = _one(
            "SELECT n_dead_tup FROM pg_stat_user_tables "
            "WHERE schemaname = %s AND relname = 'messages'",
            schema,
        )
        assert dead is not None and dead[0] < 1000


def test_read_connections_are_pooled_across_threads(pg_schema_url: str) -> None:
    """Sixteen threads reading at once share ``pool_size`` read connections:
    the process holds writer + listener + 2 readers, whatever its thread count."""
    app = f"tidings-pool-{uuid.uuid4().hex[:8]}"
    url = f"{pg_schema_url}&pool_size=2&application_name={app}"
    errors: list[BaseException] = []
    with Client(url) as client:
        client.declare_queue("pooled")
        client.publish_batch("pooled", [b"m"] * 10)

        def reader() -> None:
            try:
                for _ in range(30):
                    assert client.queue_stats("pooled").ready == 10
            except BaseException as exc:  # collected: a thread's assert is otherwise lost
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with psycopg.connect(PG, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchone()
    assert not errors, errors[0]
    assert row is not None and row[0] <= 4


def test_bad_pool_size_is_a_configuration_error(pg_schema_url: str) -> None:
    with pytest.raises(ConfigurationError, match="pool_size"):
        Client(f"{pg_schema_url}&pool_size=0")


def test_queue_recreated_by_another_client_is_followed(pg_schema_url: str) -> None:
    """The fast paths cache queue ids by name. Another client deleting and
    declaring the queue again (a new id, other settings) must not send this
    client's acknowledged publishes to the old id: they land in the new
    queue, and claims see its messages and settings."""
    with Client(pg_schema_url) as mine, Client(pg_schema_url) as other:
        mine.declare_queue("moved")
        mine.publish_batch("moved", [b"old"] * 5)
        assert len(mine.get("moved", 5)) == 5  # the id is cached now
        other.delete_queue("moved")
        other.declare_queue("moved", lease="7s")
        mine.publish_batch("moved", [b"new"] * 5)
        mine.publish("moved", b"one")
        got = mine.get("moved", 10)
        assert sorted(d.body for d in got) == [b"new"] * 5 + [b"one"]
        assert all(6_000 < d.lease_until - time.time() * 1000 <= 7_000 for d in got)
        mine.ack(got)
        assert other.queue_stats("moved").ready == 0
