"""The queue side of the SQL engines (Q1–Q6), one implementation for SQLite
and PostgreSQL (statements in the shared dialect, see ``log.py``).

A message row is claimable when ``visible_at <= now``: a delay, and a lease,
are both just a later ``visible_at``. A claim leases rows in one UPDATE per
batch and gives each claim a fresh receipt, so a consumer whose lease ran
out cannot settle the redelivery someone else now holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import Any, TypeVar, cast

from ...config import QueueConfig
from ...errors import AlreadyExists, QueueNotFound
from ...message import Delivery, QueueStats
from ...ports.queue import OutgoingMessage, Settlement
from . import batched, deadletter, pg_fast
from .clock import LocalClock
from .database import Writer
from .deadletter import dead_letter
from .dialect import SQLITE, Dialect
from .exchanges import ExchangeStore
from .fifo import BLOCKED
from .publish import publish_in, publish_row
from .queue_rows import COLUMNS as _COLUMNS
from .queue_rows import check_no_loop, config_of, delivery, require
from .settle import chunks, release_rows, settle_all, why_not

T = TypeVar("T")

# Find and lease in one statement: the subquery walks the claim index
# (visible_at <= now) and skips rows other claimers hold; RETURNING hands
# back the leased rows (delivery_count already counts this delivery).
_CLAIM = (
    "UPDATE messages SET visible_at=?, leased=1, receipt=?, delivery_count=delivery_count+1 "
    "WHERE queue_id=? AND id IN (SELECT id FROM messages WHERE queue_id=? AND visible_at<=? "
    f"ORDER BY visible_at, id LIMIT ? /*skip locked*/) RETURNING {_COLUMNS}"
)


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
        self._wake = wake  # wake-ups after a fast path's own commit
        # Deadlines are written by one client and judged by others: one clock.
        self._clock = clock or LocalClock()
        self._now = self._clock.now_ms
        self._read = read  # runs fn(conn) on a read connection
        self._dialect = dialect
        # PostgreSQL: one-statement fast paths (pg_fast) run by ``oneshot``
        # on autocommit connections, with queue ids cached by name (each
        # fast statement checks the id still names the queue).
        self._oneshot = oneshot
        self._ids: dict[str, tuple[int, QueueConfig]] = {}

    def publish_in_transaction(
        self, conn: Any, queue: str, messages: Sequence[OutgoingMessage]
    ) -> list[int]:
        """Publish inside the caller's open transaction on their own
        connection: the messages exist iff that transaction commits."""
        return self._on_callers(conn, queue, lambda c: publish_in(c, queue, messages, self._now()))

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
            conn, queue, lambda c: settle_all(c, queue, settlements, self._now())
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
        # Concurrent publishes to one queue that meet in one commit are
        # stored with one insert (see Writer.run's merge).
        def general(conn: Any) -> list[int]:
            return publish_in(conn, queue, messages, self._now())

        merge = (("publish", queue), (queue, messages), partial(_publish_merged, now=self._now))
        channels = ("queue:" + queue,)
        hit = self._fast_target(queue)
        fast = None if hit is None else _fast_publish(queue, hit, messages, self._now())
        if fast is not None:
            try:
                ids = self._run_fast(fast)
                if self._wake is not None:
                    self._wake(channels)
                return ids
            except pg_fast.Stale:
                self._ids.pop(queue, None)
        return self._w.run(general, channels=channels, merge=merge, locks=(("queue", queue),))

    def _run_fast(self, fn: Callable[[Any], T]) -> T:
        assert self._oneshot is not None  # reached only after _fast_target
        return cast(T, self._oneshot(fn))

    def _fast_target(self, queue: str) -> tuple[int, QueueConfig] | None:
        """The cached (id, config) of ``queue`` when fast paths apply."""
        if self._oneshot is None:
            return None
        hit = self._ids.get(queue)
        if hit is None:
            try:
                hit = self._ids[queue] = self._read(lambda conn: require(conn, queue))
            except QueueNotFound:
                return None  # the general path says so
        return hit

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
        hit = self._fast_target(queue)
        if hit is not None and batched.accepts(hit[1]):  # else only rows: the general path
            try:
                got = self._fast_claim(queue, hit, max_messages)
                if got is not None:
                    return got
            except pg_fast.Stale:
                self._ids.pop(queue, None)
        return self._w.run(lambda conn: _claim(conn, queue, max_messages, self._now()), fsync=False)

    def _fast_claim(
        self, queue: str, hit: tuple[int, QueueConfig], max_messages: int
    ) -> list[Delivery] | None:
        """Lease from batch rows in one statement per row reached; None when
        the queue has message rows or expired ranges to serve first."""
        qid, config = hit
        receipt = os.urandom(8).hex()
        out: list[Delivery] = []
        while len(out) < max_messages:
            now, want = self._now(), max_messages - len(out)
            until = now + int(config.lease_s * 1000)
            got = self._run_fast(
                partial(
                    pg_fast.claim,
                    queue=queue,
                    qid=qid,
                    want=want,
                    receipt=receipt,
                    until=until,
                    now=now,
                )
            )
            if got is None:
                return out or None
            out.extend(got)
            if not got:
                break
        return out

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
        # Not fsynced, like offset commits: an ack lost in a power cut only
        # means a redelivery (at-least-once), never a lost message. A process
        # crash loses nothing (WAL, synchronous=NORMAL).
        hit = self._fast_target(queue)
        if hit is None or any(s.action != "ack" for s in settlements):
            return self._settle_general(queue, settlements)
        receipts = {s.receipt for s in settlements}
        if len(receipts) != 1:
            return self._settle_general(queue, settlements)
        (qid, config), receipt, ids = hit, receipts.pop(), [s.id for s in settlements]
        acked = self._run_fast(
            partial(
                pg_fast.ack,
                qid=qid,
                receipt=receipt,
                ids=ids,
                now=self._now(),
                rows=not config.fifo,
            )
        )
        if acked == set(ids) and len(acked) == len(ids):
            return [None] * len(ids)
        # Partly acked in one statement: the rest (late or partial ranges,
        # FIFO rows, lost leases, repeats of an id) is judged by the general path.
        results: list[BaseException | None] = [None] * len(settlements)
        pending: list[int] = []  # indexes of the settlements still to judge
        for i, s in enumerate(settlements):
            if s.id in acked:
                acked.discard(s.id)
            else:
                pending.append(i)
        if pending:
            judged = self._settle_general(queue, [settlements[i] for i in pending])
            for i, verdict in zip(pending, judged, strict=True):
                results[i] = verdict
        return results

    def _settle_general(
        self, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]:
        return self._w.run(
            lambda conn: settle_all(conn, queue, settlements, self._now()),
            fsync=False,
            channels=("queue:" + queue,),
            locks=(("queue", queue),),
        )

    def release(self, queue: str, leases: Sequence[tuple[int, str]]) -> int:
        """End these (id, receipt) leases as if the messages were never
        delivered: ready again at their place in the queue, delivery count
        undone. Leases already ended are left alone; how many were released."""

        def txn(conn: Any) -> int:
            qid, _ = require(conn, queue)
            by_receipt: dict[str, set[int]] = {}
            for mid, receipt in leases:
                by_receipt.setdefault(receipt, set()).add(mid)
            batched.explode_receipts(conn, qid, set(by_receipt))  # ranges become rows
            now = self._now()
            return sum(
                release_rows(conn, qid, receipt, chunk, now)
                for receipt, ids in by_receipt.items()
                for chunk in chunks(sorted(ids))
            )

        return self._w.run(
            txn, fsync=False, channels=("queue:" + queue,), locks=(("queue", queue),)
        )

    def extend(self, queue: str, id: int, receipt: str, lease_s: float) -> int:
        def txn(conn: Any) -> int:
            qid, _ = require(conn, queue)
            batched.explode_receipts(conn, qid, {receipt})  # a range lease ends per message
            now = self._now()
            until = now + int(lease_s * 1000)
            n = conn.execute(
                "UPDATE messages SET visible_at=? WHERE queue_id=? AND id=? AND receipt=? "
                "AND visible_at>?",
                (until, qid, id, receipt, now),
            ).rowcount
            if n != 1:
                raise why_not(conn, qid, id, receipt, now)
            return until

        return self._w.run(txn, fsync=False) - self._shift_ms()

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


def _fast_publish(
    queue: str, hit: tuple[int, QueueConfig], messages: Sequence[OutgoingMessage], now: int
) -> Callable[[Any], list[int]] | None:
    """The one-statement publish for these messages, if one applies: batch
    rows for plain messages, a message row for one message that needs no
    dedup, FIFO group or max-length check."""
    qid, config = hit
    if any(len(m.body) > config.max_body_bytes for m in messages):
        return None  # the general path says what is wrong
    if batched.fits(config, messages):
        return partial(pg_fast.publish, queue=queue, qid=qid, messages=messages, now=now)
    m = messages[0] if len(messages) == 1 else None
    if m is None or m.idempotency_key is not None or config.fifo or config.max_length is not None:
        return None
    return partial(
        pg_fast.publish_one, queue=queue, qid=qid, row=publish_row(qid, 0, m, config, now)
    )


def _publish_merged(
    conn: Any, payloads: list[tuple[str, Sequence[OutgoingMessage]]], now: Callable[[], int]
) -> list[list[int]]:
    """Several callers' publishes to one queue as one; each gets its own ids."""
    queue = payloads[0][0]
    ids = publish_in(conn, queue, [m for _, messages in payloads for m in messages], now())
    out, start = [], 0
    for _, messages in payloads:
        out.append(ids[start : start + len(messages)])
        start += len(messages)
    return out


def _claim(conn: Any, queue: str, max_messages: int, now: int) -> list[Delivery]:
    qid, config = require(conn, queue)
    out: list[Delivery] = []
    receipt = os.urandom(8).hex()
    until = now + int(config.lease_s * 1000)
    batched.explode_expired(conn, qid, now)  # their messages are redelivered as rows
    while len(out) < max_messages:
        # FIFO queues too: blocked group members sit past this range (fifo.py).
        want = max_messages - len(out)
        rows = conn.execute(_CLAIM, (until, receipt, qid, qid, now, want)).fetchall()
        rows.sort(key=lambda r: r[0])  # RETURNING has no order; ids are publish order
        before = [(r[0], r[1] - 1, *r[2:]) for r in rows]  # as stored before this claim
        leased = [r for r in before if not _retire(conn, qid, config, r, now)]
        out.extend(delivery(queue, r, receipt, until) for r in leased)
        if len(rows) == len(leased):  # nothing retired: no more to find now
            break
    if len(out) < max_messages:
        out.extend(batched.claim(conn, queue, qid, max_messages - len(out), receipt, until))
    return out


def _retire(conn: Any, qid: int, config: QueueConfig, row: Sequence[Any], now: int) -> bool:
    """Dead-letter instead of delivering: expired (Q5) or out of deliveries (Q2)."""
    count, expires = row[1], row[2]
    if expires is not None and expires <= now:
        dead_letter(conn, qid, config, row, "expired", "ttl elapsed before delivery", now)
        return True
    if config.max_deliveries is not None and count >= config.max_deliveries:
        dead_letter(conn, qid, config, row, "max_deliveries", "lease expired", now)
        return True
    return False
