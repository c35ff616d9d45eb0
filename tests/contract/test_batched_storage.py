"""Batch rows and range leases leave nothing behind: once every message of
a batch is settled (acked in ranges, or exploded into rows by a nack or an
expired lease and then acked), its counters, payload and leases are gone."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg

from tidings import Client

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
