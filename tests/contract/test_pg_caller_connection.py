"""Appending and publishing on the caller's own PostgreSQL connection when
tidings' tables live in ``?schema=NAME`` (issue 8): the caller's
``search_path`` does not matter, and it is left as it was."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tidings import Client, QueueNotFound


def _search_path(conn: Any) -> str:
    return str(conn.execute("SHOW search_path").fetchone()[0])


def test_calls_on_the_callers_connection_ignore_and_keep_its_search_path(
    pg_schema_url: str,
) -> None:
    """send_batch, publish and publish_batch on a connection whose
    search_path does not name tidings' schema: stored iff the caller
    commits; the caller's search_path (session or SET LOCAL) unchanged
    after each call, inside a transaction and in autocommit mode."""
    import psycopg

    client = Client(pg_schema_url)
    topic, queue = f"own-{uuid.uuid4().hex[:6]}", f"ownq-{uuid.uuid4().hex[:6]}"
    client.create_topic(topic)
    client.declare_queue(queue)
    producer = client.producer()
    conn = psycopg.connect(pg_schema_url.split("?", maxsplit=1)[0], autocommit=True)
    session_path = _search_path(conn)  # the server's default, without our schema
    with conn.transaction():
        meta = producer.send_batch(topic, [b"a", b"b"], connection=conn)
        assert _search_path(conn) == session_path
        first = client.publish(queue, b"one", connection=conn)
        conn.execute("SET LOCAL search_path TO pg_catalog")
        ids = client.publish_batch(queue, [b"two", b"three"], connection=conn)
        assert _search_path(conn) == "pg_catalog"
    assert _search_path(conn) == session_path
    # Autocommit: each call is its own transaction.
    later = client.publish(queue, b"four", connection=conn)
    assert _search_path(conn) == session_path
    with pytest.raises(QueueNotFound):
        client.publish("no-such-queue", b"x", connection=conn)
    assert _search_path(conn) == session_path
    conn.close()
    assert [m.offset for m in meta] == [0, 1]
    assert [r.value for r in client.engine.log.read(topic, 0, 0, 10)] == [b"a", b"b"]
    got = client.get(queue, 10)
    assert [(d.id, d.body) for d in got] == [
        (first, b"one"),
        (ids[0], b"two"),
        (ids[1], b"three"),
        (later, b"four"),
    ]
    client.close()
