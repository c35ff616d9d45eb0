"""Batch rows and range leases leave nothing behind: once every message of
a batch is settled (acked in ranges, or exploded into rows by a nack or an
expired lease and then acked), its counters, payload and leases are gone."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest

from tidings import Client
from tidings.errors import AlreadySettled

PG = "postgresql://127.0.0.1:5432/test"
TABLES = ("message_batches", "batch_payloads", "leases", "messages")


def _drain_with_detours(client: Client, queue: str) -> None:
    client.publish_batch(queue, [b"x"] * 600)  # three batch rows of at most 256
    first = client.get(queue, 50)
    client.nack(first[:5])  # explodes the range
    client.ack(first[5:])
    client.get(queue, 20)  # leased, then abandoned: the lease runs out
    time.sleep(0.35)
    while got := client.get(queue, 97):
        client.ack(got)
    assert client.queue_stats(queue).ready == 0


def test_sqlite_keeps_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with Client(f"sqlite:///{path}") as client:
        client.declare_queue("q", lease="0.3s")
        _drain_with_detours(client, "q")
    conn = sqlite3.connect(path)
    assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES] == [0] * 4


def test_postgres_keeps_no_leftovers(pg_schema_url: str) -> None:
    with Client(pg_schema_url) as client:
        client.declare_queue("q", lease="0.3s")
        _drain_with_detours(client, "q")
    schema = pg_schema_url.rsplit("=", 1)[1]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in TABLES]
    assert counts == [(0,)] * 4


def test_postgres_one_statement_path_follows_a_queue_declared_again(pg_schema_url: str) -> None:
    """A client caches queue ids for its one-statement publish, claim and
    ack; when another client deletes the queue and declares it again (new
    id, maybe other settings), the first client's next calls notice the
    stale id and finish on the general path, under the queue's settings."""
    schema = pg_schema_url.rsplit("=", 1)[1]
    with Client(pg_schema_url) as a, Client(pg_schema_url) as b:
        a.declare_queue("q")
        a.publish_batch("q", [b"old"] * 8)  # caches the id
        held = a.get("q", 8)
        b.delete_queue("q")
        b.declare_queue("q", fifo=True)  # a FIFO queue holds no batch rows
        with pytest.raises(AlreadySettled):  # the ack: stale id, judged by the general path
            a.ack(held)
        assert a.publish_batch("q", [b"new"] * 8) == list(range(1, 9))
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            assert conn.execute("SELECT count(*) FROM messages").fetchone() == (8,)
        b.delete_queue("q")
        b.declare_queue("q")
        assert a.get("q", 1) == []  # caches the new id
        b.delete_queue("q")
        b.declare_queue("q")  # the same settings, another id
        b.publish_batch("q", [b"plain"] * 8)
        got = a.get("q", 8)  # the claim: stale id
        assert [d.body for d in got] == [b"plain"] * 8
        a.ack(got)
        assert b.queue_stats("q").ready == b.queue_stats("q").leased == 0
