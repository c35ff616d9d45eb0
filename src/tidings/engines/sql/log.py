"""The log side of the SQL engines: topics, batches, groups, offsets.

One implementation for SQLite and PostgreSQL. Statements are written in the
common subset (``?`` placeholders, ``ON CONFLICT``, ``RETURNING``); the
PostgreSQL connection adapter translates placeholders, two-argument
``max``/``min`` and the ``/*for update*/`` marker (see ``postgres.py``).
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from functools import partial
from typing import Any

from ...config import TopicConfig
from ...errors import (
    AlreadyExists,
    ConfigurationError,
    CorruptDataError,
    GroupNotFound,
    PartitionNotFound,
    TopicNotFound,
)
from ...groups.coordinator import GroupState
from ...message import Record, TopicPartition
from ...ports.log import (
    AppendResult,
    Compaction,
    GroupTransition,
    PartitionedColumns,
    PartitionInfo,
    RecordColumns,
    T,
)
from .._common import check_batches, check_partition
from . import recordbatch as rb
from . import spread
from .append import Stale, append_txn
from .clock import LocalClock
from .database import LockKey, Writer
from .dialect import SQLITE, Dialect
from .forward import bound_queues
from .group_rows import commit_txn, load_group_row, lock_group, shift_sessions, store_group
from .maintenance import compact_partition, retain_partition
from .seek import offset_for_time

_READ = (
    "SELECT base_offset, last_offset, ts, crc, count, payload FROM batches "
    "WHERE topic_id=? AND partition=? AND last_offset>=? ORDER BY last_offset LIMIT ?"
)
# A read fetches one batch first (a consumer at the head of the log needs
# one), then as many as the batches seen so far suggest are needed. A LIMIT
# is needed because client-side cursors (psycopg) fetch the whole result.
_MAX_BATCHES_PER_QUERY = 256


def read_retrying(
    connect: Callable[[], Any],
    fn: Callable[[Any], T],
    translate: Callable[[BaseException], BaseException],
) -> T:
    """Run ``fn`` on a read connection, translating driver errors (the
    Writer does that for writes). A pooled connection to a server that
    restarted (or a primary that failed over) fails on its first use after:
    a read is autocommit, so it is retried once, and ``connect`` replaces
    the broken connection."""
    for attempt in (0, 1):
        conn = connect()
        try:
            return fn(conn)
        except Exception as exc:
            if attempt == 0 and getattr(conn, "broken", False):
                continue
            err = translate(exc)
            if err is exc:
                raise
            raise err from exc
    raise AssertionError("unreachable")


class _Reader:
    """Runs read statements through :func:`read_retrying`."""

    __slots__ = ("_connect", "_translate")

    def __init__(
        self, connect: Callable[[], Any], translate: Callable[[BaseException], BaseException]
    ) -> None:
        self._connect, self._translate = connect, translate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return read_retrying(self._connect, lambda conn: conn.execute(sql, params), self._translate)


class SqlLog:
    """Implements :class:`tidings.ports.LogEngine` on one SQL database.

    ``location`` names the database in error messages (a file path, or
    host/dbname)."""

    def __init__(
        self,
        writer: Writer,
        reader: Callable[[], Any],
        location: str,
        dialect: Dialect = SQLITE,
        clock: LocalClock | None = None,
    ) -> None:
        self._w = writer
        self._clock = clock or LocalClock()  # group sessions are judged by it
        self._connect_reader = reader
        self._dialect = dialect
        self._translate = dialect.translate
        self._path = location
        self._cache: dict[str, tuple[int, TopicConfig]] = {}
        self._cache_lock = threading.Lock()
        # SQLite stores calls spread over many partitions as spread rows.
        self._heads = spread.Heads() if dialect.name == "sqlite" else None

    def _reader(self) -> _Reader:
        return _Reader(self._connect_reader, self._translate)

    def schema_version(self) -> int:
        """The tidings schema version stored in the database."""
        row = (
            self._reader()
            .execute("SELECT value FROM tidings_meta WHERE key='schema_version'")
            .fetchone()
        )
        return int(row[0])

    # ---- topic lookup -------------------------------------------------
    def _topic(self, name: str, refresh: bool = False) -> tuple[int, TopicConfig]:
        if not refresh:
            hit = self._cache.get(name)
            if hit is not None:
                return hit
        row = (
            self._reader().execute("SELECT id, config FROM topics WHERE name=?", (name,)).fetchone()
        )
        with self._cache_lock:
            if row is None:
                self._cache.pop(name, None)
                raise TopicNotFound(
                    f"topic {name!r} does not exist: create it with `tidings topics create {name}`"
                )
            self._cache[name] = (row[0], _config(row[1]))
            return self._cache[name]

    def _checked(self, name: str, partition: int) -> tuple[int, TopicConfig]:
        tid, config = self._topic(name)
        try:
            check_partition(config, partition)
        except PartitionNotFound:  # partitions may have been added elsewhere
            tid, config = self._topic(name, refresh=True)
            check_partition(config, partition)
        return tid, config

    # ---- topics ---------------------------------------------------------
    def create_topic(self, config: TopicConfig) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "INSERT INTO topics(name, config) VALUES (?, ?) "
                "ON CONFLICT(name) DO NOTHING RETURNING id",
                (config.name, json.dumps(asdict(config))),
            ).fetchone()
            if row is None:
                raise AlreadyExists(f"topic {config.name!r} already exists")
            conn.executemany(
                "INSERT INTO partitions(topic_id, partition) VALUES (?, ?)",
                [(row[0], p) for p in range(config.partitions)],
            )

        self._w.run(txn)

    def delete_topic(self, name: str) -> None:
        def txn(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT id FROM topics WHERE name=?", (name,)).fetchone()
            if row is None:
                raise TopicNotFound(f"topic {name!r} does not exist")
            for table in self._topic_tables():
                conn.execute(f"DELETE FROM {table} WHERE topic_id=?", (row[0],))
            conn.execute("DELETE FROM topics WHERE id=?", (row[0],))
            conn.execute("DELETE FROM offsets WHERE topic=?", (name,))
            return int(row[0])

        tid = self._w.run(txn, channels=("log:" + name,))
        if self._heads is not None:
            self._heads.forget(tid)
        with self._cache_lock:
            self._cache.pop(name, None)

    def _topic_tables(self) -> tuple[str, ...]:
        spreads = ("spread_batches",) if self._heads is not None else ()
        return ("batches", "partitions", *spreads)

    def get_topic(self, name: str) -> TopicConfig:
        return self._topic(name, refresh=True)[1]

    def list_topics(self) -> list[TopicConfig]:
        rows = self._reader().execute("SELECT config FROM topics ORDER BY name").fetchall()
        return [_config(r[0]) for r in rows]

    def add_partitions(self, name: str, total: int) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            # Locked: a concurrent grower waits, then sees the new count.
            row = conn.execute(
                "SELECT id, config FROM topics WHERE name=? /*for update*/", (name,)
            ).fetchone()
            if row is None:
                raise TopicNotFound(f"topic {name!r} does not exist")
            config = _config(row[1])
            if total <= config.partitions:
                raise ConfigurationError(
                    f"topic {name!r} has {config.partitions} partitions; "
                    f"the new total must be larger, got {total}"
                )
            new = replace(config, partitions=total)
            conn.execute("UPDATE topics SET config=? WHERE id=?", (json.dumps(asdict(new)), row[0]))
            conn.executemany(
                "INSERT INTO partitions(topic_id, partition) VALUES (?, ?)",
                [(row[0], p) for p in range(config.partitions, total)],
            )

        self._w.run(txn)
        self._topic(name, refresh=True)

    def describe_partitions(self, name: str) -> list[PartitionInfo]:
        tid, _ = self._topic(name, refresh=True)
        self._merge_pending(tid)
        rows = self._reader().execute(
            "SELECT partition, first_offset, next_offset, bytes FROM partitions "
            "WHERE topic_id=? ORDER BY partition",
            (tid,),
        )
        return [PartitionInfo(*r) for r in rows]

    # ---- records --------------------------------------------------------
    def append(self, topic: str, batches: Mapping[int, RecordColumns]) -> dict[int, AppendResult]:
        for attempt in (0, 1):
            tid, config = self._topic(topic, refresh=attempt > 0)
            try:
                check_batches(config, batches)
            except PartitionNotFound:
                if attempt:
                    raise
                continue
            encoded = self._encoded(batches)
            # Wake consumers of queues fed by this topic too (decided again,
            # atomically, inside the transaction).
            queues = bound_queues(self._reader(), topic)
            try:
                return self._w.run(
                    self._append_txn(tid, topic, batches, encoded),
                    fsync=config.durability == "fsync",
                    channels=("log:" + topic, *("queue:" + q for q in queues)),
                    locks=self._append_locks(tid, batches, queues),
                )
            except Stale:
                continue
        raise TopicNotFound(f"topic {topic!r} does not exist")

    def _append_txn(
        self,
        tid: int,
        topic: str,
        batches: Mapping[int, RecordColumns],
        encoded: dict[int, tuple[bytes, int]] | None,
    ) -> Callable[[Any], dict[int, AppendResult]]:
        """The append, to run inside a write transaction (ours or the
        caller's)."""
        return partial(
            append_txn, tid=tid, encoded=encoded, topic=topic, batches=batches, heads=self._heads
        )

    def _append_locks(
        self, tid: int, batches: Mapping[int, RecordColumns], queues: list[str]
    ) -> tuple[LockKey, ...]:
        """The rows an append locks, for the Writer to lock in one order
        (PostgreSQL). SQLite's write transaction holds the whole file:
        none, and no thousand keys to sort for a spread call."""
        if self._heads is not None:
            return ()
        return (*(("partition", tid, p) for p in batches), *(("queue", q) for q in queues))

    def _encoded(self, batches: Mapping[int, RecordColumns]) -> dict[int, tuple[bytes, int]] | None:
        """Each partition's payload, encoded outside the write lock (only
        the inserts are serialised); None for a call to be stored as one
        spread row (SQLite)."""
        if self._heads is not None and spread.is_spread(batches):
            return None
        if isinstance(batches, PartitionedColumns) and batches.flat_headers is None:
            # All partitions' batches in a few C-level passes (partitions ascending).
            payloads = rb.encode_runs(batches.flat_values, batches.flat_keys, batches.counts)
            if payloads is not None:
                return dict(zip(batches.partitions, zip(payloads, batches.counts)))
        return {
            p: (rb.encode(c.values, c.keys, c.headers), len(c.values))
            for p, c in sorted(batches.items(), key=lambda item: item[0])
            if c.values
        }

    def _merge_pending(self, tid: int) -> None:
        """Merge the topic's spread rows (SQLite) before reading its
        partitions' records or counters."""
        if self._heads is not None and spread.pending(self._reader(), tid):
            self._w.run(partial(spread.merge, tid=tid), fsync=False)

    def append_in(
        self, conn: Any, topic: str, batches: Mapping[int, RecordColumns]
    ) -> dict[int, AppendResult]:
        """Append inside the caller's open transaction on their own
        connection ``conn`` (same database): the records exist iff that
        transaction commits. The partitions stay locked until it ends, so
        offsets still follow commit order (L2)."""
        tid, config = self._topic(topic, refresh=True)
        check_batches(config, batches)
        encoded = self._encoded(batches)  # partitions in order: appenders cannot deadlock
        try:
            with self._dialect.borrow(conn) as ours:
                result = self._append_txn(tid, topic, batches, encoded)(ours)
                self._dialect.notify_in(ours, "log:" + topic)
        except Stale:
            raise TopicNotFound(f"topic {topic!r} does not exist") from None
        except Exception as exc:
            err = self._translate(exc)
            if err is exc:
                raise
            raise err from exc
        return result

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        tid, _ = self._checked(topic, partition)
        out: list[Record] = []
        conn = self._reader()
        limit, merged = 1, False
        while True:
            rows = conn.execute(_READ, (tid, partition, offset, limit)).fetchall()
            if self._decode_rows(topic, partition, offset, rows, out, max_records):
                return out
            if len(rows) < limit:
                # The log's end, or where its spread rows (SQLite) begin.
                if merged or self._heads is None or not spread.pending(conn, tid):
                    return out
                self._merge_pending(tid)
                merged = True
                if rows:
                    offset = rows[-1][1] + 1
                continue
            offset = rows[-1][1] + 1
            per_batch = max(1, sum(r[4] for r in rows) // len(rows))
            limit = min(_MAX_BATCHES_PER_QUERY, (max_records - len(out)) // per_batch + 1)

    def _decode_rows(
        self,
        topic: str,
        partition: int,
        offset: int,
        rows: list[tuple[int, int, int, int, int, bytes]],
        out: list[Record],
        max_records: int,
    ) -> bool:
        """Append the rows' records at or after ``offset`` to ``out``; True
        when the read is complete (enough records, or a damaged batch)."""
        for base, last, ts, crc, _count, payload in rows:
            if rb.checksum(payload) != crc:
                if out:
                    return True  # hand out what is good; the next read reports it
                raise self._corrupt(topic, partition, base, last)
            records = rb.to_records(topic, partition, base, ts, rb.decode(payload))
            out.extend(records[_first_at_or_after(records, offset) :] if not out else records)
            if len(out) >= max_records:
                return True
        return False

    def _corrupt(self, topic: str, partition: int, base: int, last: int) -> CorruptDataError:
        return CorruptDataError(
            f"{self._path}: topic {topic!r} partition {partition} offsets {base}..{last} "
            f"failed their checksum and cannot be read; the rest of the log is intact. "
            f"Seek to offset {last + 1} to skip them."
        )

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        tid, _ = self._checked(topic, partition)
        self._merge_pending(tid)
        return read_retrying(
            self._connect_reader,
            lambda conn: offset_for_time(conn, tid, partition, timestamp_ms),
            self._translate,
        )

    # ---- groups ---------------------------------------------------------
    def group_transition(self, group: str, fn: GroupTransition[T]) -> T:
        """``fn`` judges sessions by the caller's clock (``time.time()``);
        the state is stored in the shared clock's time (see ``clock.py``),
        so it is moved into the caller's time for ``fn`` and back."""

        def txn(conn: sqlite3.Connection) -> T:
            state = lock_group(conn, group)
            counts = {
                name: _config(cfg).partitions
                for name, cfg in conn.execute("SELECT name, config FROM topics")
            }
            shift = self._clock.offset_s()
            shift_sessions(state, -shift)
            result = fn(state, counts)
            shift_sessions(state, shift)
            store_group(conn, state)
            return result

        # Membership is not fsynced: losing it in a power cut only makes
        # members rejoin; records and offsets are unaffected.
        return self._w.run(txn, fsync=False, locks=(("group", group),))

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        now += self._clock.offset_s()  # the caller's time → the shared clock's
        # Offsets survive a process crash; after a power cut a group may
        # re-read a little (at-least-once), never skip.
        self._w.run(
            partial(commit_txn, group=group, member_id=member_id, offsets=offsets, now=now),
            fsync=False,
            locks=(("group", group),),
        )

    def commit_in(
        self,
        conn: Any,
        group: str,
        member_id: str | None,
        offsets: Mapping[TopicPartition, int],
        now: float,
    ) -> None:
        """:meth:`commit` inside the caller's open transaction on their own
        connection ``conn`` (same database): the offsets are stored iff that
        transaction commits. Fencing (L4) is checked in it too: FencedError
        leaves nothing of ours written (roll back your transaction). The
        group row stays locked until the caller's transaction ends."""
        now += self._clock.offset_s()
        try:
            with self._dialect.borrow(conn) as ours:
                commit_txn(ours, group=group, member_id=member_id, offsets=offsets, now=now)
        except Exception as exc:
            err = self._translate(exc)
            if err is exc:
                raise
            raise err from exc

    def committed(self, group: str) -> dict[TopicPartition, int]:
        rows = self._reader().execute(
            'SELECT topic, partition, "offset" FROM offsets WHERE group_name=?', (group,)
        )
        return {TopicPartition(t, p): o for t, p, o in rows}

    def list_groups(self) -> list[str]:
        rows = self._reader().execute(
            "SELECT name FROM groups UNION SELECT group_name FROM offsets ORDER BY 1"
        )
        return [r[0] for r in rows]

    def load_group(self, group: str) -> GroupState | None:
        return load_group_row(self._reader(), group)

    def delete_group(self, group: str) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            a = conn.execute("DELETE FROM groups WHERE name=?", (group,)).rowcount
            b = conn.execute("DELETE FROM offsets WHERE group_name=?", (group,)).rowcount
            if not a and not b:
                raise GroupNotFound(f"consumer group {group!r} does not exist")

        self._w.run(txn)

    # ---- maintenance ----------------------------------------------------
    def enforce_retention(self, topic: str, now_ms: int) -> int:
        """Remove what the topic's limits no longer keep, a page of batches
        per transaction (see ``RETENTION_PAGE``) so no writer waits long."""
        tid, config = self._topic(topic, refresh=True)
        self._merge_pending(tid)
        removed = 0
        for p in range(config.partitions):
            more = True
            while more:
                gone, more = self._w.run(partial(_retain_page, tid=tid, partition=p, now=now_ms))
                removed += gone
        return removed

    def compact(self, topic: str, now_ms: int) -> int:
        return self.compact_round(topic, now_ms).removed

    def compact_round(self, topic: str, now_ms: int) -> Compaction:
        tid, config = self._topic(topic, refresh=True)
        if not config.compact:
            raise ConfigurationError(f"topic {topic!r} is not compacted (create it with --compact)")
        keep_ms = int(config.tombstone_retention_s * 1000)
        self._merge_pending(tid)
        # Read on a read connection, rewrite a page per write transaction:
        # producers wait for one page's rewrite at most (maintenance.py).
        results = [
            compact_partition(self._reader(), self._w, tid, p, now_ms - keep_ms)
            for p in range(config.partitions)
        ]
        oldest = [ts for _, ts in results if ts is not None]
        return Compaction(sum(n for n, _ in results), min(oldest) + keep_ms + 1 if oldest else None)


def _retain_page(
    conn: sqlite3.Connection, *, tid: int, partition: int, now: int
) -> tuple[int, bool]:
    row = conn.execute("SELECT config FROM topics WHERE id=?", (tid,)).fetchone()
    if row is None:  # deleted meanwhile
        return 0, False
    return retain_partition(conn, tid, partition, _config(row[0]), now)


def _first_at_or_after(records: list[Record], offset: int) -> int:
    if not records or records[0].offset >= offset:
        return 0
    first = records[0].offset
    if records[-1].offset - first == len(records) - 1:  # dense batch
        return offset - first
    return bisect.bisect_left([r.offset for r in records], offset)


def _config(text: str) -> TopicConfig:
    return TopicConfig(**json.loads(text))
