"""Consuming inside the caller's own database transaction (R5): offset
commits (fenced, L4) and queue acks (lease checked) that are stored iff the
caller's transaction commits, together with the caller's own writes.

Engines declaring ``transactional_consume`` supported must pass these. The
``own_connection`` fixture opens *your* connection to the engine's
database: the default does it for ``sqlite:///`` URLs; override it for
other engines (the PostgreSQL suites do, with psycopg).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ..client.client import Client
from ..errors import FencedError, LeaseLost, UnsupportedFeature
from ..message import TopicPartition
from ._base import FAST_GROUP, ContractBase, expire_sessions, poll_until

Connect = Callable[[], Any]


class _OwnConnection(ContractBase):
    @pytest.fixture
    def own_connection(self, client: Client, engine_url: str) -> Connect:
        """A function opening your own connection to the engine's database."""
        self.need(client, "transactional_consume")
        if not engine_url.startswith("sqlite:///"):
            pytest.fail(f"{type(self).__name__}: override own_connection for {engine_url}")
        path = engine_url.removeprefix("sqlite:///").split("?")[0]
        return lambda: sqlite3.connect(path, timeout=30, check_same_thread=False)


def _effects_table(conn: Any) -> str:
    """A temporary table of the caller's own, visible to this connection only."""
    table = f"fx_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE TEMP TABLE {table} (what TEXT)")
    conn.commit()
    return table


def _effects(conn: Any, table: str) -> list[str]:
    rows = [r[0] for r in conn.execute(f"SELECT what FROM {table} ORDER BY what").fetchall()]
    conn.rollback()
    return rows


class TransactionalCommitContract(_OwnConnection):
    def test_commit_in_your_transaction_is_stored_iff_it_commits(
        self, client: Client, topic: str, own_connection: Connect
    ) -> None:
        """R5: offsets committed with ``connection`` go with the caller's
        writes: rolled back, neither is stored; committed, both are."""
        client.create_topic(topic)
        client.produce(topic, b"a")
        client.produce(topic, b"b")
        group, tp = "g-" + topic[-40:], TopicPartition(topic, 0)
        conn = own_connection()
        with (
            contextlib.closing(conn),
            client.consumer([topic], group, start="beginning", auto_commit=False) as consumer,
        ):
            fx = _effects_table(conn)
            poll_until(
                [consumer], lambda: tp in consumer.assignment() and consumer.position(tp) == 2
            )
            conn.execute(f"INSERT INTO {fx} VALUES ('a')")
            consumer.commit({tp: 1}, connection=conn)
            conn.rollback()
            assert client.engine.groups.committed(group).get(tp) is None
            assert _effects(conn, fx) == []
            conn.execute(f"INSERT INTO {fx} VALUES ('a')")
            consumer.commit({tp: 1}, connection=conn)
            conn.commit()
            assert client.engine.groups.committed(group)[tp] == 1
            assert _effects(conn, fx) == ["a"]

    def test_a_fenced_commit_in_your_transaction_writes_nothing(
        self, client: Client, topic: str, own_connection: Connect
    ) -> None:
        """L4 in the caller's transaction: once the member's session has
        expired its commit raises FencedError and stores no offset."""
        client.create_topic(topic)
        client.produce(topic, b"a")
        group, tp = "g-" + topic[-40:], TopicPartition(topic, 0)
        conn = own_connection()
        with (
            contextlib.closing(conn),
            client.consumer(
                [topic], group, start="beginning", auto_commit=False, group_config=FAST_GROUP
            ) as consumer,
        ):
            poll_until(
                [consumer], lambda: tp in consumer.assignment() and consumer.position(tp) == 1
            )
            if not expire_sessions(client, group):
                consumer.expire_session()  # a native coordinator: let the session run out
                time.sleep(FAST_GROUP.session_timeout_s + 0.5)
            with pytest.raises(FencedError):
                consumer.commit({tp: 1}, connection=conn)
            conn.commit()  # even committed, the fenced call left nothing behind
            assert client.engine.groups.committed(group).get(tp) is None

    def test_commit_in_a_transaction_refused_where_unsupported(
        self, client: Client, topic: str
    ) -> None:
        if client.features.supports("transactional_consume"):
            pytest.skip(f"{client.url} commits in the caller's transaction")
        client.create_topic(topic)
        consumer = client.consumer([topic], "g-" + topic[-40:], auto_commit=False)
        with consumer, pytest.raises(UnsupportedFeature):
            consumer.commit({TopicPartition(topic, 0): 0}, connection=object())


class TransactionalAckContract(_OwnConnection):
    def test_ack_in_your_transaction_is_atomic_with_your_writes(
        self, client: Client, topic: str, own_connection: Connect
    ) -> None:
        """R5: rolled back, the message stays leased and is redelivered;
        committed, it is gone and the caller's write is there."""
        client.declare_queue(topic, lease="1s")
        client.publish(topic, b"job")
        conn = own_connection()
        with contextlib.closing(conn):
            fx = _effects_table(conn)
            (first,) = client.get(topic)
            conn.execute(f"INSERT INTO {fx} VALUES ('job')")
            client.ack(first, connection=conn)
            conn.rollback()
            assert client.get(topic) == []  # still leased: not acked, not released
            assert _effects(conn, fx) == []
            (again,) = client.get(topic, wait=5)  # the lease ran out: redelivered
            assert (again.id, again.delivery_count) == (first.id, 2)
            conn.execute(f"INSERT INTO {fx} VALUES ('job')")
            client.ack(again, connection=conn)
            conn.commit()
            assert _effects(conn, fx) == ["job"]
            stats = client.queue_stats(topic)
            assert stats.ready + stats.leased + stats.delayed == 0

    def test_ack_in_your_transaction_checks_the_lease(
        self, client: Client, topic: str, own_connection: Connect
    ) -> None:
        """A lease that ran out (the message may be someone else's now)
        cannot be acked in the caller's transaction: LeaseLost."""
        client.declare_queue(topic, lease="0.2s")
        client.publish(topic, b"job")
        conn = own_connection()
        with contextlib.closing(conn):
            (first,) = client.get(topic)
            time.sleep(0.4)  # the lease must end: nothing to await but time
            with pytest.raises(LeaseLost):
                client.ack(first, connection=conn)
            conn.rollback()
            assert [d.id for d in client.get(topic, wait=5)] == [first.id]

    def test_ack_in_a_transaction_refused_where_unsupported(
        self, client: Client, topic: str
    ) -> None:
        if client.features.supports("transactional_consume"):
            pytest.skip(f"{client.url} acks in the caller's transaction")
        client.declare_queue(topic)
        client.publish(topic, b"job")
        (d,) = client.get(topic)
        with pytest.raises(UnsupportedFeature):
            client.ack(d, connection=object())
        client.ack(d)
