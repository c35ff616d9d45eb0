"""The queue side of the SQL engines (Q1–Q6), one implementation for SQLite
and PostgreSQL (statements in the shared dialect, see ``log.py``).

:class:`SqlQueues` is the facade: declarations, views and dead letters are
here; each publish, claim and settle is sent down one of the store's paths,
chosen once per operation from what the facade knows (the dialect, the
queue's cached settings, the messages and settlements):

* ``pg_fast.py`` — PostgreSQL only: the common case in one self-committing
  statement; what the statement cannot do, it finishes on the general path;
* ``general.py`` — one write transaction, which reads the queue's settings
  and stores plain messages as batch rows with range leases
  (``batched.py``), everything else as message rows (``rows.py``).

Data flows down only: the paths call shared helpers (``queue_rows.py``,
``fifo.py``, ``deadletter.py``, the writer), never back up here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any, TypeVar

from ...config import QueueConfig
from ...errors import AlreadyExists, QueueNotFound
from ...message import Delivery, QueueStats
from ...ports.queue import OutgoingMessage, Settlement
from . import batched, deadletter, general, pg_fast
from .clock import LocalClock
from .database import Writer
from .dialect import SQLITE, Dialect
from .exchanges import ExchangeStore
from .fifo import BLOCKED
from .queue_rows import check_no_loop, config_of, delivery, require

T = TypeVar("T")


class SqlQueues(ExchangeStore):
    """Implements :class:`tidings.ports.queue.QueueEngine`."""

    def __init__(
        self,
        writer: Writer,
        read: Callable[[Callable[[Any], Any]], Any],
        dialect: Dialect = SQLITE,
        oneshot: Callable[[Callable[[Any], Any]], Any] | None = None,
        clock: LocalClock | None = None,
        wake: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self._w = writer
        # Deadlines are written by one client and judged by others: one clock.
        self._clock = clock or LocalClock()
        self._now = self._clock.now_ms
        self._read = read  # runs fn(conn) on a read connection
        self._dialect = dialect
        # PostgreSQL: the one-statement path, run by ``oneshot`` on
        # autocommit connections and woken by ``wake`` after its commits.
        # Queue (id, settings) cached by name, for the one-statement path
        # only (its statements check the id still names the queue, so the
        # settings are the queue's: they never change under one id).
        self._ids: dict[str, pg_fast.Target] = {}
        self._pg = (
            None
            if oneshot is None or wake is None
            else pg_fast.PgFast(oneshot, writer, self._ids, self._now, wake)
        )

    def publish_in_transaction(
        self, conn: Any, queue: str, messages: Sequence[OutgoingMessage]
    ) -> list[int]:
        """Publish inside the caller's open transaction on their own
        connection: the messages exist iff that transaction commits."""
        return self._on_callers(
            conn, queue, lambda c: general.publish_in(c, queue, messages, self._now())
        )

    def settle_in_transaction(
        self, conn: Any, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]:
        """:meth:`settle` inside the caller's open transaction on their own
        connection: acked messages are gone iff that transaction commits
        (rolled back, they stay leased and come back when the lease ends).
        Each lease is checked in it; a LeaseLost / AlreadySettled in the
        result means the caller must roll back to keep their writes and
        the acks together."""
        return self._on_callers(
            conn, queue, lambda c: general.settle_in(c, queue, settlements, self._now())
        )

    def _on_callers(self, conn: Any, queue: str, fn: Callable[[Any], T]) -> T:
        """``fn`` on the caller's connection (our schema for the call), then
        a wake-up for ``queue`` sent when their transaction commits; driver
        errors translated."""
        try:
            with self._dialect.borrow(conn) as ours:
                out = fn(ours)
                self._dialect.notify_in(ours, "queue:" + queue)
        except Exception as exc:
            err = self._dialect.translate(exc)
            if err is exc:
                raise
            raise err from exc
        return out

    # ---- declaration ------------------------------------------------------
    def declare(self, config: QueueConfig) -> QueueConfig:
        def txn(conn: Any) -> QueueConfig:
            check_no_loop(conn, config)
            # Insert-or-nothing, then compare with what is there: replicas
            # declaring the same queue at once all succeed (a check, then an
            # insert, let the later ones hit the unique name).
            if not _insert_queue(conn, config):
                existing = require(conn, config.name)[1]
                if existing != config:
                    raise AlreadyExists(
                        f"queue {config.name!r} exists with other settings: {existing}"
                    )
                return config
            if config.dead_letter is not None:
                _insert_queue(conn, QueueConfig(config.dead_letter))  # on first use, plain
            return config

        return self._w.run(txn)

    def get_queue(self, name: str) -> QueueConfig:
        return self._read(lambda conn: require(conn, name)[1])  # type: ignore[no-any-return]

    def list_queues(self) -> list[QueueConfig]:
        rows = self._read(
            lambda conn: conn.execute("SELECT config FROM queues ORDER BY name").fetchall()
        )
        return [config_of(r[0]) for r in rows]

    def delete(self, name: str) -> None:
        def txn(conn: Any) -> None:
            qid, _ = require(conn, name)
            batched.drop(conn, qid)
            for table in ("messages", "dedup"):
                conn.execute(f"DELETE FROM {table} WHERE queue_id=?", (qid,))
            conn.execute("DELETE FROM queues WHERE id=?", (qid,))
            conn.execute("DELETE FROM bindings WHERE queue=?", (name,))

        self._w.run(txn, channels=("queue:" + name,))
        self._ids.pop(name, None)

    def purge(self, name: str) -> int:
        def txn(conn: Any) -> int:
            qid, _ = require(conn, name)
            n = conn.execute("DELETE FROM messages WHERE queue_id=?", (qid,)).rowcount
            n += batched.drop(conn, qid)
            conn.execute("UPDATE queues SET size=0 WHERE id=?", (qid,))
            return int(n)

        return self._w.run(txn)

    def stats(self, name: str) -> QueueStats:
        now = self._now()

        def read(conn: Any) -> QueueStats:
            qid, _ = require(conn, name)
            row = conn.execute(
                # A due message blocked behind its FIFO group counts as ready.
                "SELECT SUM(CASE WHEN visible_at<=? OR visible_at BETWEEN ? AND ? "
                "THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN visible_at>? AND leased=1 THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN visible_at>? AND leased=0 AND NOT visible_at BETWEEN ? AND ? "
                "THEN 1 ELSE 0 END) "
                "FROM messages WHERE queue_id=?",
                (now, BLOCKED, BLOCKED + now, now, now, BLOCKED, BLOCKED + now, qid),
            ).fetchone()
            dead = conn.execute("SELECT dead_lettered FROM queues WHERE id=?", (qid,)).fetchone()
            ready, leased, delayed = (int(x or 0) for x in row)
            in_batches, in_ranges = batched.counts(conn, qid, now)
            return QueueStats(name, ready + in_batches, leased + in_ranges, delayed, int(dead[0]))

        return self._read(read)  # type: ignore[no-any-return]

    # ---- publishing -------------------------------------------------------
    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]:
        pg, target = self._one_statement(queue)
        if pg is not None and target is not None:
            how = _publish_statement(target[1], messages)
            if how is not None:
                return pg.publish(queue, target, messages, batch=how == "batch")
        return general.publish(self._w, queue, messages, self._now)

    def _one_statement(self, queue: str) -> tuple[pg_fast.PgFast | None, pg_fast.Target | None]:
        """The one-statement path and the queue's cached (id, settings), on
        PostgreSQL; (None, None) elsewhere, or if the queue does not exist
        (the general path says so)."""
        if self._pg is None:
            return None, None
        hit = self._ids.get(queue)
        if hit is None:
            try:
                hit = self._ids[queue] = self._read(lambda conn: require(conn, queue))
            except QueueNotFound:
                return None, None
        return self._pg, hit

    def sweep_expired(self, now: int) -> int:
        """Dead-letter messages whose TTL passed while nobody claimed them
        (claims do it too); returns how many. Scans only queues with a TTL,
        a page at a time (see :func:`deadletter.expired_pages`), each page moved in its
        own short write transaction."""
        rows = self._read(deadletter.fetch("SELECT config FROM queues", ()))
        moved = 0
        for config in (config_of(r[0]) for r in rows):
            if config.ttl_s is not None:
                for ids in deadletter.expired_pages(self._read, config.name, now):
                    moved += self._w.run(
                        partial(deadletter.sweep_page, queue=config.name, ids=ids, now=now),
                        fsync=False,
                    )
        return moved

    # ---- consuming --------------------------------------------------------
    def _shift_ms(self) -> int:
        """Shared clock → the caller's (``time.time()``), in ms: the times
        handed out (lease ends, next due time) are the caller's to compare
        with its own clock. 0 unless the clocks differ by a millisecond."""
        return round(self._clock.offset_s() * 1000)

    def claim(self, queue: str, max_messages: int) -> list[Delivery]:
        got = self._claim_shared_clock(queue, max_messages)
        shift = self._shift_ms()
        return [d._replace(lease_until=d.lease_until - shift) for d in got] if shift else got

    def _claim_shared_clock(self, queue: str, max_messages: int) -> list[Delivery]:
        pg, target = self._one_statement(queue)
        # A queue that may hold no batch rows has only message rows: general.
        if pg is not None and target is not None and general.accepts(target[1]):
            return pg.claim(queue, target, max_messages)
        return general.claim(self._w, queue, max_messages, self._now)

    def next_visible(self, queue: str) -> int | None:
        now = self._now()

        def read(conn: Any) -> int | None:
            qid, _ = require(conn, queue)
            row = conn.execute(
                "SELECT MIN(visible_at) FROM messages WHERE queue_id=? AND visible_at>? "
                "AND visible_at<?",  # blocked FIFO members wait for an ack, not a time
                (qid, now, BLOCKED),
            ).fetchone()
            times = [t for t in (row and row[0], batched.next_expiry(conn, qid, now)) if t]
            return int(min(times)) - self._shift_ms() if times else None

        return self._read(read)  # type: ignore[no-any-return]

    def settle(self, queue: str, settlements: Sequence[Settlement]) -> list[BaseException | None]:
        pg, target = self._one_statement(queue)
        if pg is not None and target is not None and _acks_of_one_claim(settlements):
            return pg.settle(queue, target, settlements)
        return general.settle(self._w, queue, settlements, self._now)

    def release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        """End these (id, receipt) leases as if the messages were never
        delivered: ready again at their place in the queue, delivery count
        undone. Leases already ended are left alone; how many were released."""
        return self._w.run(
            lambda conn: general.release_in(conn, queue, leases, self._now()),
            fsync=False,
            channels=("queue:" + queue,),
            locks=(("queue", queue),),
        )

    def extend(self, queue: str, id: int, receipt: str, lease_s: float) -> int:
        until = self._w.run(
            lambda conn: general.extend_in(conn, queue, id, receipt, lease_s, self._now()),
            fsync=False,
        )
        return until - self._shift_ms()

    # ---- dead letters -----------------------------------------------------
    def dead_letters(self, queue: str, limit: int) -> list[Delivery]:
        name, rows = deadletter.browse(self._read, queue, limit)
        return [
            d._replace(delivery_count=int(d.headers.get("x-delivery-count", 0)))
            for d in (delivery(name, r, "", 0) for r in rows)
        ]

    def redrive(self, queue: str, ids: Sequence[int] | None) -> int:
        return sum(
            self._w.run(
                partial(deadletter.redrive_rows, queue=queue, ids=page, now=self._now()),
                channels=("queue:" + queue,),
            )
            for page in deadletter.pages(self._read, queue, ids)
        )

    def purge_dead_letters(self, queue: str, ids: Sequence[int] | None) -> int:
        return sum(
            self._w.run(partial(deadletter.purge_rows, queue=queue, ids=page, now=self._now()))
            for page in deadletter.pages(self._read, queue, ids)
        )


def _insert_queue(conn: Any, config: QueueConfig) -> bool:
    """Create the queue unless one of that name exists; True if created."""
    row = conn.execute(
        "INSERT INTO queues(name, config) VALUES (?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
        (config.name, json.dumps(asdict(config))),
    ).fetchone()
    return row is not None


def _publish_statement(config: QueueConfig, messages: Sequence[OutgoingMessage]) -> str | None:
    """Which one-statement publish applies: "batch" (batch rows for plain
    messages), "row" (a message row for one message that needs no dedup,
    FIFO group or max-length check), or None (the general path; also for
    bodies too large, which it refuses)."""
    if any(len(m.body) > config.max_body_bytes for m in messages):
        return None
    if general.fits(config, messages):
        return "batch"
    m = messages[0] if len(messages) == 1 else None
    if m is None or m.idempotency_key is not None or config.fifo or config.max_length is not None:
        return None
    return "row"


def _acks_of_one_claim(settlements: Sequence[Settlement]) -> bool:
    """True when one statement may settle these: acks under one receipt
    (nacks and rejects are the general path's)."""
    return (
        all(s.action == "ack" for s in settlements) and len({s.receipt for s in settlements}) == 1
    )
