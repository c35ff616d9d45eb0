"""O1 through every supported connection kind: SQLAlchemy 2 sync and async
sessions, psycopg async, aiosqlite — on SQLite and PostgreSQL. Rolled
back → no event; committed → exactly the committed events, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_db import AppDb, app_db
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from tidings import Client
from tidings.outbox import AsyncOutbox, Outbox, OutboxSchemaError, Relay, migrate, status


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppDb]:
    yield from app_db(request.param, tmp_path)


def _relayed(db: AppDb, topic: str) -> list[bytes | None]:
    with Client(db.engine_url) as client:
        if topic not in {t.name for t in client.topics()}:
            client.create_topic(topic)
        with Relay(db.url, client) as relay:
            relay.run(until_idle=True)
        return [r.value for r in client.engine.log.read(topic, 0, 0, 100)]


def _search_path(engine: object, schema: str | None) -> None:
    if schema is None:
        return

    @event.listens_for(engine, "connect")
    def _set(dbapi_conn: object, _record: object) -> None:
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()
        dbapi_conn.commit()  # type: ignore[attr-defined]


def test_sqlalchemy_session(db: AppDb) -> None:
    migrate(db.url)
    engine = create_engine(db.sqlalchemy_url())
    _search_path(engine, db.schema)
    with Session(engine) as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS orders (id INTEGER)"))
        session.commit()
        session.execute(text("INSERT INTO orders VALUES (1)"))
        Outbox().add(session, "topic:sa-orders", b"rolled back")
        session.rollback()
        session.execute(text("INSERT INTO orders VALUES (2)"))
        Outbox().add(session, "topic:sa-orders", b"order 2", key="2")
        session.commit()
    with engine.connect() as conn:  # a Connection works too
        Outbox().add(conn, "topic:sa-orders", b"never committed")
    with engine.begin() as conn:
        Outbox().add(conn, "topic:sa-orders", b"order 3")
    engine.dispose()
    assert _relayed(db, "sa-orders") == [b"order 2", b"order 3"]


def test_sqlalchemy_async_session(db: AppDb) -> None:
    migrate(db.url)

    async def main() -> None:
        engine = create_async_engine(db.sqlalchemy_url(driver_async=True))
        _search_path(engine.sync_engine, db.schema)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await AsyncOutbox().add(conn, "topic:sa-async", b"rolled back")
            await conn.rollback()
        from sqlalchemy.ext.asyncio import AsyncSession

        async with AsyncSession(engine) as session:
            await AsyncOutbox().add(session, "topic:sa-async", b"a1", key="a")
            await AsyncOutbox().add(session, "topic:sa-async", b"a2", key="a")
            await session.commit()
        await engine.dispose()

    asyncio.run(main())
    assert _relayed(db, "sa-async") == [b"a1", b"a2"]


def test_native_async_connections(db: AppDb) -> None:
    """psycopg.AsyncConnection on PostgreSQL, aiosqlite on SQLite."""
    migrate(db.url)

    async def main() -> None:
        if db.kind == "sqlite":
            import aiosqlite

            conn = await aiosqlite.connect(db.url.split("sqlite:///", 1)[1], isolation_level=None)
        else:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(
                "postgresql://127.0.0.1:5432/test", autocommit=True
            )
            await conn.execute(f'SET search_path TO "{db.schema}"')
        await conn.execute("BEGIN")
        await AsyncOutbox().add(conn, "topic:native-async", b"gone")
        await conn.execute("ROLLBACK")
        await conn.execute("BEGIN")
        await AsyncOutbox().add(conn, "topic:native-async", b"kept")
        await conn.execute("COMMIT")
        await conn.close()

    asyncio.run(main())
    assert _relayed(db, "native-async") == [b"kept"]


def test_the_wrong_connection_kind_is_a_typed_error(db: AppDb) -> None:
    conn = db.connect()
    with pytest.raises(Exception, match="AsyncOutbox"):
        asyncio.run(AsyncOutbox().add(conn, "topic:t", b"x"))
    with pytest.raises(Exception, match="cannot write through"):
        Outbox().add(object(), "topic:t", b"x")
    conn.execute(db.begin)
    with pytest.raises(OutboxSchemaError):
        Outbox().add(conn, "topic:t", b"x")
    conn.execute("ROLLBACK")
    conn.close()
    migrate(db.url)
    assert status(db.url)[0].pending == 0
