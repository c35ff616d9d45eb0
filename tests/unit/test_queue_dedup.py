"""Idempotency keys (Q3) do not pile up: expired keys are deleted as keyed
publishes come, so the dedup table stays about one window in size."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tidings import Client


def test_expired_idempotency_keys_are_forgotten(tmp_path: Path) -> None:
    db = tmp_path / "dedup.db"
    with Client(f"sqlite:///{db}") as client:
        client.declare_queue("keys", dedup_window="0.1s")
        for n in range(5):
            client.publish("keys", b"m", idempotency_key=f"old-{n}")
        time.sleep(0.15)  # the window is a deadline, not an event
        fresh = client.publish("keys", b"m", idempotency_key="new")
        assert client.publish("keys", b"m", idempotency_key="new") == fresh
        with sqlite3.connect(db) as conn:
            keys = [r[0] for r in conn.execute("SELECT idem_key FROM dedup")]
        assert keys == ["new"]
        assert client.queue_stats("keys").ready == 6
