"""The SQLite file's disk use: deletes write no more than they must
(secure_delete=FAST unless full erasure is asked for), the WAL stays
bounded, free space goes back to the file system, and retention works in
short transactions."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tidings import Client
from tidings.engines.sql import database
from tidings.engines.sql.maintenance import RETENTION_PAGE
from tidings.engines.sql.vacuum import KEEP_FREE_PAGES
from tidings.errors import ConfigurationError


def _pragma(client: Client, name: str) -> int:
    conn = client.engine._reader()  # type: ignore[attr-defined]
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def test_secure_delete_is_fast_unless_asked(tmp_path: Path) -> None:
    """FAST (2) by default whatever the SQLite build's default; ``on`` (1) on request."""
    with Client(f"sqlite:///{tmp_path}/a.db") as client:
        assert _pragma(client, "secure_delete") == 2
    with Client(f"sqlite:///{tmp_path}/b.db?secure_delete=on") as client:
        assert _pragma(client, "secure_delete") == 1


def test_secure_delete_option_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="secure_delete: 'always'"):
        Client(f"sqlite:///{tmp_path}/c.db?secure_delete=always")


def test_full_erasure_leaves_no_deleted_bytes_in_the_file(tmp_path: Path) -> None:
    """With ``secure_delete=on`` a deleted topic's records are gone from the file."""
    path = tmp_path / "erase.db"
    marker = b"SECRET-" + os.urandom(8).hex().encode()
    with Client(f"sqlite:///{path}?secure_delete=on&maintenance_interval=0") as client:
        client.create_topic("secret")
        client.producer().send_batch("secret", [marker * 500] * 20)  # overflow pages too
        client.delete_topic("secret")
        client.engine._reader().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
        assert marker not in path.read_bytes()


def test_wal_is_truncated_after_a_large_transaction(tmp_path: Path) -> None:
    """A 40 MB transaction grows the WAL; once checkpointed and reused it
    shrinks back to the journal size limit instead of staying 40 MB."""
    path = tmp_path / "wal.db"
    with Client(f"sqlite:///{path}?maintenance_interval=0") as client:
        client.create_topic("big")
        producer = client.producer()
        producer.send_batch("big", [os.urandom(100_000) for _ in range(400)])
        assert os.path.getsize(f"{path}-wal") > 40_000_000
        client.engine._reader().execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[attr-defined]
        producer.send_batch("big", [b"small"])  # restarts the WAL from its start
        assert os.path.getsize(f"{path}-wal") <= database.JOURNAL_SIZE_LIMIT


def test_retention_removes_a_page_of_batches_per_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """900 batches past the limit go in transactions of at most RETENTION_PAGE
    batches each, so a producer never waits for all of them."""
    deleted_per_txn: list[int] = []
    begin, commit = database.SQLiteSession.begin, database.SQLiteSession.commit

    def spy_begin(self: database.SQLiteSession, fsync: bool, locks: list[Any]) -> None:
        begin(self, fsync, locks)
        self._at = self.conn.total_changes  # type: ignore[attr-defined]

    def spy_commit(self: database.SQLiteSession, channels: set[str]) -> None:
        deleted_per_txn.append(self.conn.total_changes - self._at)  # type: ignore[attr-defined]
        commit(self, channels)

    with Client(f"sqlite:///{tmp_path}/ret.db?maintenance_interval=0") as client:
        client.create_topic("ret", retention_bytes=1_000)
        producer = client.producer()
        for _ in range(1_000):
            producer.send_batch("ret", [b"x" * 100])
        monkeypatch.setattr(database.SQLiteSession, "begin", spy_begin)
        monkeypatch.setattr(database.SQLiteSession, "commit", spy_commit)
        removed = client.enforce_retention("ret")
        (info,) = client.partitions("ret")
    assert removed >= 900 and info.first_offset == removed and info.next_offset == 1_000
    assert len(deleted_per_txn) >= 9
    assert max(deleted_per_txn) <= RETENTION_PAGE + 1  # the batches + the partition row


def _fill_and_drain(client: Client, queue: str, megabytes: int) -> None:
    client.declare_queue(queue)
    for _ in range(megabytes):
        client.publish_batch(queue, [os.urandom(1_000) for _ in range(1_000)])
    while got := client.get(queue, 500):
        client.ack(got)


def _file_bytes(client: Client, path: Path) -> int:
    client.engine._reader().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    return os.path.getsize(path)


def test_drained_queue_file_shrinks_after_maintenance_rounds(tmp_path: Path) -> None:
    path = tmp_path / "drain.db"
    with Client(f"sqlite:///{path}?maintenance_interval=0.2s") as client:
        _fill_and_drain(client, "drain", 30)
        deadline = time.monotonic() + 30
        while _pragma(client, "freelist_count") > KEEP_FREE_PAGES:
            assert time.monotonic() < deadline, "maintenance never gave the space back"
            time.sleep(0.1)
        assert _file_bytes(client, path) < 7_500_000


def test_file_made_before_auto_vacuum_switches_once_it_is_small(tmp_path: Path) -> None:
    """A file created without auto_vacuum is converted by maintenance (one
    VACUUM) once its live data is small, and shrinks."""
    path = tmp_path / "old.db"
    Client(f"sqlite:///{path}?maintenance_interval=0").close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA auto_vacuum=NONE")
    raw.execute("VACUUM")
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    raw.close()
    with Client(f"sqlite:///{path}?maintenance_interval=0") as client:
        _fill_and_drain(client, "old", 20)
        assert _file_bytes(client, path) > 20_000_000
        client.engine.reclaim_space()  # type: ignore[attr-defined]
        assert _file_bytes(client, path) < 5_000_000
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    raw.close()
