"""The log conformance suite on every engine that needs no service."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tidings import Client, CorruptDataError, EngineUnavailable, TopicPartition
from tidings.engines.sql import spread
from tidings.testing import FAST_GROUP, LogContract, poll_until, read_all
from tidings.testing._base import wakeup_latency


@pytest.mark.engine("memory")
class TestMemoryLog(LogContract):
    @pytest.fixture
    def engine_url(self) -> str:
        return "memory://"


@pytest.mark.engine("sqlite")
@pytest.mark.sqlite
class TestSQLiteLog(LogContract):
    @pytest.fixture
    def engine_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.mark.engine("sqlite")
@pytest.mark.sqlite
class TestSQLiteLogAllSpread(LogContract):
    """The whole suite again with every append stored as a spread row
    (``engines/sql/spread.py``) and merged every third row: reads, seeks,
    retention and compaction must not tell the difference."""

    @pytest.fixture
    def engine_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.setattr(spread, "SPREAD_PARTITIONS", 1)
        monkeypatch.setattr(spread, "SPREAD_RECORDS", 1 << 30)
        monkeypatch.setattr(spread, "MERGE_ROWS", 3)
        return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.mark.engine("sqlite")
@pytest.mark.sqlite
class TestSQLiteFile:
    """What only a file-backed engine promises: persistence, checksums,
    refusing foreign files, and several processes sharing one file."""

    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'bus.db'}"

    @pytest.fixture
    def topic(self, request: pytest.FixtureRequest) -> str:
        return f"{request.node.name[:50]}-{uuid.uuid4().hex[:8]}"

    def test_reopen_keeps_topics_records_and_offsets(self, url: str, topic: str) -> None:
        """L1/L5: closing and reopening the file keeps topics, records (with
        keys, headers, timestamps) and committed offsets; offsets continue."""
        tp = TopicPartition(topic, 1)
        with Client(url) as client:
            client.create_topic(topic, partitions=2, retention="7d", compact=True)
            first = client.produce(topic, b"v", key="k", headers={"h": "1"}, partition=1)
            client.produce(topic, None, key="k", partition=1)
            client.reset_offsets("g", topic, "end")
        with Client(url) as client:
            config = client.topic(topic)
            assert (config.partitions, config.retention_s, config.compact) == (2, 604800, True)
            got = read_all(client, topic, 1)
            assert [(r.offset, r.key, r.value, dict(r.headers)) for r in got] == [
                (0, b"k", b"v", {"h": "1"}),
                (1, b"k", None, {}),
            ]
            assert got[0].timestamp == first.timestamp
            assert client.engine.groups.committed("g")[tp] == 2
            assert client.produce(topic, b"w", partition=1).offset == 2
            with client.consumer(topic, "g", group_config=FAST_GROUP) as c:
                resumed = poll_until([c], lambda: c.lag().get(tp) == 0)
            assert [(r.partition, r.offset) for r in resumed] == [(1, 2)]

    def test_corrupt_batch_is_reported_rest_stays_readable(self, url: str, topic: str) -> None:
        """Checksums: a flipped byte in one stored batch raises CorruptDataError
        naming its offsets; other batches and partitions stay readable, and a
        consumer can seek past the damage."""
        with Client(url) as client:
            client.create_topic(topic, partitions=2)
            producer = client.producer()
            for values in ([b"a0", b"a1"], [b"b2", b"b3", b"b4"], [b"c5"]):
                producer.send_batch(topic, values, partition=0)
            producer.send_batch(topic, [b"other"], partition=1)
        _flip_payload_byte(url, base_offset=2)
        with Client(url) as client:
            log = client.engine.log
            assert [r.value for r in log.read(topic, 0, 0, 100)] == [b"a0", b"a1"]
            with pytest.raises(CorruptDataError, match=r"offsets 2\.\.4") as err:
                log.read(topic, 0, 2, 100)
            assert topic in str(err.value) and "partition 0" in str(err.value)
            assert [r.value for r in log.read(topic, 0, 5, 100)] == [b"c5"]
            assert [r.value for r in log.read(topic, 1, 0, 100)] == [b"other"]
            tp = TopicPartition(topic, 0)
            with client.consumer(topic, assign=[tp], start=2) as c, pytest.raises(CorruptDataError):
                c.poll(timeout=1)
            with client.consumer(topic, assign=[tp], start=2) as c:
                c.seek(tp, 5)
                assert [r.offset for r in c.poll(timeout=1)] == [5]

    def test_compaction_does_not_launder_a_corrupt_batch(self, url: str, topic: str) -> None:
        """Checksums + L6: compaction never rewrites a damaged batch under a
        fresh checksum; the damage is still reported after compacting."""
        with Client(url) as client:
            client.create_topic(topic, compact=True)
            client.producer().send_batch(topic, [b"a", b"b"], keys=["k1", "k2"])
            client.produce(topic, b"c", key="k1")
        _flip_payload_byte(url, base_offset=0)
        with Client(url) as client:
            with contextlib.suppress(CorruptDataError):
                client.compact(topic)
            with pytest.raises(CorruptDataError, match=r"offsets 0\.\.1"):
                client.engine.log.read(topic, 0, 0, 100)
            assert [r.value for r in client.engine.log.read(topic, 0, 2, 100)] == [b"c"]

    def test_compaction_in_pages_keeps_what_is_appended_meanwhile(
        self, url: str, topic: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """L6: compaction reads outside the write lock and rewrites a page
        at a time; records appended between its read and its rewrite (here
        before every page's write transaction) are all kept, and each key
        ends with its latest value."""
        from tidings.engines.sql import maintenance

        monkeypatch.setattr(maintenance, "COMPACT_PAGE", 2)
        with Client(url) as client:
            client.create_topic(topic, compact=True)
            producer = client.producer()
            for i in range(7):
                producer.send_batch(topic, [b"%d" % i] * 3, keys=["a", "b", f"c{i}"])
            writer = client.engine._writer  # type: ignore[attr-defined]
            real_run = writer.run
            appended = []

            def append_first(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
                if getattr(fn, "func", None) is maintenance._rewrite_page:
                    appended.append(client.produce(topic, b"new%d" % len(appended), key="a"))
                return real_run(fn, *args, **kwargs)

            monkeypatch.setattr(writer, "run", append_first)
            client.compact(topic)
            monkeypatch.setattr(writer, "run", real_run)
            assert len(appended) >= 2
            latest = {r.key: r.value for r in read_all(client, topic, 0)}
            assert latest[b"a"] == b"new%d" % (len(appended) - 1) and latest[b"b"] == b"6"
            kept = [r.offset for r in read_all(client, topic, 0)]
            assert {m.offset for m in appended} <= set(kept)
            client.compact(topic)
            assert [r.value for r in read_all(client, topic, 0) if r.key == b"a"] == [
                b"new%d" % (len(appended) - 1)
            ]

    def test_tombstone_appended_during_compaction_deletes_its_key(
        self, url: str, topic: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """L6: a tombstone appended while compaction runs (between its read
        and its rewrite) is never dropped in that compaction, even when
        already past the horizon (a publisher clock behind): the value it
        deletes cannot come back. The next compaction drops both."""
        from tidings.engines.sql import maintenance

        monkeypatch.setattr(maintenance, "COMPACT_PAGE", 1)  # the tombstone's batch is read later
        with Client(url) as client:
            client.create_topic(topic, compact=True, tombstone_retention="0s")
            client.producer().send_batch(topic, [b"v1", b"v2", b"w"], keys=["k", "k", "x"])
            writer = client.engine._writer  # type: ignore[attr-defined]
            real_run = writer.run

            def delete_k_first(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
                if getattr(fn, "func", None) is maintenance._rewrite_page:
                    monkeypatch.setattr(writer, "run", real_run)
                    client.produce(topic, None, key="k")
                return real_run(fn, *args, **kwargs)

            monkeypatch.setattr(writer, "run", delete_k_first)
            later = int(time.time() * 1000) + 60_000  # every tombstone is past the horizon
            client.engine.log.compact_round(topic, later)
            values = {r.key: r.value for r in read_all(client, topic, 0)}
            assert values.get(b"k") is None and values[b"x"] == b"w"
            client.engine.log.compact_round(topic, later)
            assert [(r.key, r.value) for r in read_all(client, topic, 0)] == [(b"x", b"w")]

    def test_opening_a_client_keeps_the_locks_this_process_holds(
        self, url: str, tmp_path: Path
    ) -> None:
        """Multi-process safety: opening another client on a file this
        process already uses never drops the process's SQLite locks (POSIX
        locks go with any descriptor of the file that is closed). Were the
        shared lock lost, another process closing its last connection would
        think itself the last user and delete the WAL under our feet."""
        path = url.removeprefix("sqlite:///")
        with Client(url) as client:
            client.create_topic("t")
            client.produce("t", b"x")
            Client(url).close()
            closer = (
                "import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1])\n"
                "c.execute('SELECT count(*) FROM topics').fetchall()\n"
                "c.close()\n"
            )
            subprocess.run([sys.executable, "-c", closer, path], check=True)
            assert os.path.exists(path + "-wal"), "another process took us for gone"
            assert client.produce("t", b"y").offset == 1

    @pytest.mark.parametrize("journal", ["delete", "wal"])
    def test_foreign_sqlite_database_is_refused(self, tmp_path: Path, journal: str) -> None:
        """Bad input: an SQLite file that is not a tidings database raises
        EngineUnavailable saying so, and is left byte for byte as it was
        (no switch to WAL mode), with no file added beside it."""
        path = tmp_path / "app.db"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA journal_mode={journal}")
            conn.execute("CREATE TABLE customers (id INTEGER)")
            conn.execute("INSERT INTO customers VALUES (1)")
            conn.commit()
        before, files = path.read_bytes(), sorted(os.listdir(tmp_path))
        with pytest.raises(EngineUnavailable, match="not a tidings"):
            Client(f"sqlite:///{path}")
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == files

    @pytest.mark.parametrize("size", [5, 7000])
    def test_non_database_file_is_refused(self, tmp_path: Path, size: int) -> None:
        """Bad input: a file that is not an SQLite database at all raises
        EngineUnavailable with a message saying what to do; the file is left
        byte for byte as it was."""
        path = tmp_path / "notes.txt"
        path.write_bytes((b"these are my notes, not a database\n" * 200)[:size])
        before = path.read_bytes()
        with pytest.raises(EngineUnavailable, match="cannot be opened as a tidings database"):
            Client(f"sqlite:///{path}")
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == ["notes.txt"]

    def test_two_clients_share_one_file(self, url: str, topic: str) -> None:
        """Multi-process: two clients on one file (as two processes would)
        see each other's topics and records, offsets stay dense across them."""
        with Client(url) as a, Client(url) as b:
            a.create_topic(topic)
            assert b.produce(topic, b"from-b").offset == 0
            assert a.produce(topic, b"from-a").offset == 1
            assert [r.value for r in read_all(b, topic, 0)] == [b"from-b", b"from-a"]
            a.add_partitions(topic, 2)
            assert b.produce(topic, b"p1", partition=1).offset == 0

    def test_group_members_in_two_clients_split_partitions(self, url: str, topic: str) -> None:
        """L4 across processes: members opened through two clients on one file
        share the partitions, never holding the same one at once."""
        with Client(url) as a_client, Client(url) as b_client:
            a_client.create_topic(topic, partitions=4)
            every = {TopicPartition(topic, p) for p in range(4)}
            opts = {"start": "beginning", "group_config": FAST_GROUP}
            with a_client.consumer(topic, "g", **opts) as a:
                poll_until([a], lambda: a.assignment() == every)
                with b_client.consumer(topic, "g", **opts) as b:

                    def disjoint() -> None:
                        assert not a.assignment() & b.assignment()

                    poll_until([a, b], lambda: len(b.assignment()) == 2, disjoint)
                    assert a.assignment() | b.assignment() == every
                poll_until([a], lambda: a.assignment() == every)

    def test_consumer_on_one_client_woken_by_produce_on_other(self, url: str, topic: str) -> None:
        """Wake-up across processes: a consumer waiting in poll on one client
        is woken by a produce through another client on the same file."""
        with Client(url) as a, Client(url) as b:
            a.create_topic(topic)
            got, latency = wakeup_latency(a, b, topic)
        assert [r.value for r in got] == [b"ping"]
        assert latency < 0.5, f"woken after {latency:.2f}s (the poll's own slice is 1 s)"


def _flip_payload_byte(url: str, base_offset: int) -> None:
    """Damage one stored batch on disk, behind tidings' back."""
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM batches WHERE partition=0 AND base_offset=?", (base_offset,)
        ).fetchone()
        damaged = bytearray(payload)
        damaged[-1] ^= 0x40
        conn.execute(
            "UPDATE batches SET payload=? WHERE partition=0 AND base_offset=?",
            (bytes(damaged), base_offset),
        )
        conn.commit()
