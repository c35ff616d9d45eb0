"""The relay: forwards committed outbox events to an engine, in order (O2).

Per shard: take the lease (``tidings_outbox_shards``), read the events after
the shard's progress mark in id order, forward them in batches through
:class:`~tidings.Client`, then move the mark over the acknowledged prefix.
The first failure stops the shard (never a later event before an earlier
one) and backs it off with jittered exponential delays; other shards go on.

Leases: a relay publishes only while its lease has at least half its
length left by its own monotonic clock, renewing (a fenced write) when it
has less, so a relay that was frozen past its lease finds itself fenced
before it publishes again. A standby takes a shard over once its lease
expired. Wake-ups: ``PRAGMA data_version`` polling on SQLite, LISTEN/NOTIFY
on PostgreSQL. The relay runs no application code.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from ..client.client import Client
from ..errors import ConfigurationError, TidingsError
from .db import OutboxDb, open_db
from .errors import OutboxNotFound, RelayFenced
from .forward import Forwarder
from .schema import check_schema, instance_id, notifies, shard_count
from .store import EventRow, OutboxStore, ShardLease

log = logging.getLogger("tidings.relay")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RelayConfig:
    """``lease_s`` must outlast the slowest publish (a publish starts only
    with at least ``lease_s / 2`` left); ``poll_s``: SQLite change polling;
    ``pg_poll_s``: polling a PostgreSQL outbox declared without NOTIFY;
    ``shards``: the shards this relay may hold (None: all of them)."""

    outbox: str = "default"
    shards: tuple[int, ...] | None = None
    batch_size: int = 5000
    lease_s: float = 30.0
    poll_s: float = 0.002
    pg_poll_s: float = 0.02
    backoff_base_s: float = 0.05
    backoff_max_s: float = 30.0
    owner: str = field(default_factory=_owner)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigurationError(f"batch_size must be 1..100000, got {self.batch_size}")
        if self.lease_s < 0.2:
            raise ConfigurationError(f"lease must be >= 200ms, got {self.lease_s}s")
        if not 0 < self.backoff_base_s <= self.backoff_max_s:
            raise ConfigurationError("backoff_base must be > 0 and <= backoff_max")


def _count_upto(rows: list[EventRow], acked: int | None) -> int:
    """How many of ``rows`` (id order) have an id <= ``acked``."""
    if acked is None:
        return 0
    if acked == rows[-1][0]:  # the whole batch: the common case, no scan
        return len(rows)
    return bisect_right([r[0] for r in rows], acked)


@dataclass
class _Shard:
    shard: int
    lease: ShardLease | None = None
    cursor: int = 0
    deadline: float = 0.0  # monotonic end of our lease, as we know it
    failures: int = 0
    error: BaseException | None = None
    retry_at: float = 0.0
    acquire_at: float = 0.0


class Relay:
    """Forwards one outbox of an application database to an engine::

        relay = Relay("sqlite:///app.db", "sqlite:///bus.db")
        relay.run(until_idle=True)   # or run(stop_event) as a service
        relay.close()

    Raises at construction: OutboxSchemaError (the database has no outbox
    schema: wrong --db, or run the migration), OutboxNotFound,
    ConfigurationError, EngineUnavailable. ``run`` stops on ``stop``;
    with ``until_idle`` it returns once nothing it can forward is left, and
    raises the last forwarding error if a shard is failing.
    """

    def __init__(
        self,
        db: str | OutboxDb,
        to: str | Client,
        config: RelayConfig | None = None,
        **options: Any,
    ) -> None:
        self.config = config or RelayConfig(**options)
        self.db = open_db(db, self.config.poll_s) if isinstance(db, str) else db
        self._own_client = isinstance(to, str)
        try:
            check_schema(self.db)
            self.store = OutboxStore(self.db)
            self._shards = self._assigned(shard_count(self.db, self.config.outbox))
            self.client = Client(to) if isinstance(to, str) else to
        except BaseException:
            self.db.close()
            raise
        self.forwarder = Forwarder(self.client, instance_id(self.db), self.config.outbox)
        self.forwarded = 0
        self._lease_ms = int(self.config.lease_s * 1000)
        self._polls = self.db.dialect == "postgresql" and not notifies(self.db, self.config.outbox)
        if not self._polls:
            self.db.wait(0)  # start listening now: a commit after our first read wakes us

    def _assigned(self, count: int) -> list[_Shard]:
        wanted = self.config.shards if self.config.shards is not None else range(count)
        bad = [s for s in wanted if not 0 <= s < count]
        if bad:
            raise OutboxNotFound(
                f"outbox {self.config.outbox!r} has shards 0..{count - 1}, not {bad}"
            )
        return [_Shard(s) for s in wanted]

    # ---- the loop ---------------------------------------------------------
    def run(self, stop: threading.Event | None = None, until_idle: bool = False) -> int:
        """Forward until ``stop`` is set (or, with ``until_idle``, nothing is
        left); give the leases up on the way out. Events forwarded by this call."""
        stop = stop or threading.Event()
        before = self.forwarded
        try:
            while not stop.is_set():
                if self.run_once():
                    continue
                if until_idle and self._drained():
                    break
                self._wait(self._sleep())
        finally:
            self.release()
        return self.forwarded - before

    def run_once(self) -> int:
        """One round over the shards; events forwarded in it."""
        moved = 0
        for st in self._shards:
            try:
                moved += self._round(st)
            except RelayFenced as exc:
                log.warning("%s", exc)
            except TidingsError as exc:  # the outbox database itself failed
                self._back_off(st, exc, record=False)
        return moved

    def _round(self, st: _Shard) -> int:
        now = time.monotonic()
        if st.lease is None and now >= st.acquire_at:
            self._acquire(st, now)
        # Renew first: a shard backing off from a failing destination keeps
        # its lease (no standby churn during an outage).
        if st.lease is None or not self._fresh(st) or now < st.retry_at:
            return 0
        rows = self.store.read(self.config.outbox, st.shard, st.cursor, self.config.batch_size)
        if not rows or not self._fresh(st):  # checked again right before publishing
            return 0
        acked, error = self.forwarder.forward(rows)
        n = _count_upto(rows, acked)
        if n:
            self._advance(st, acked, n)  # type: ignore[arg-type]
        if error is not None:
            self._back_off(st, error, record=True)
        else:
            st.failures, st.error = 0, None
        return n

    def _acquire(self, st: _Shard, now: float) -> None:
        st.acquire_at = now + min(self.config.lease_s / 4, 1.0)
        lease = self.store.acquire(self.config.outbox, st.shard, self.config.owner, self._lease_ms)
        if lease is not None:
            st.lease, st.cursor, st.deadline = lease, lease.forwarded_id, now + self.config.lease_s
            st.retry_at, st.failures = 0.0, 0
            log.info("relay %s holds %s shard %d", self.config.owner, lease.outbox, st.shard)

    def _fresh(self, st: _Shard) -> bool:
        """True while at least half the lease is left; renews (fenced) when
        less is. False (and the shard dropped) once another relay took it."""
        t0 = time.monotonic()
        if st.deadline - t0 >= self.config.lease_s / 2:
            return True
        assert st.lease is not None
        if self.store.renew(st.lease, self._lease_ms):
            st.deadline = t0 + self.config.lease_s
            return True
        self._drop(st)
        return False

    def _advance(self, st: _Shard, acked: int, n: int) -> None:
        assert st.lease is not None
        t0 = time.monotonic()
        if not self.store.advance(st.lease, st.cursor, acked, n, self._lease_ms):
            self._drop(st)
            raise RelayFenced(
                f"shard {st.shard}: another relay took over; the {n} events just sent "
                "will be sent again by it, with the same idempotency keys"
            )
        st.cursor, st.deadline = acked, t0 + self.config.lease_s
        self.forwarded += n

    def _back_off(self, st: _Shard, error: BaseException, record: bool) -> None:
        st.failures += 1
        st.error = error
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (st.failures - 1))
        st.retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
        log.warning("shard %d: forwarding failed (%s); retry in %.2fs", st.shard, error, delay)
        if record and st.lease is not None:
            text = f"{type(error).__name__}: {error}"
            try:
                if not self.store.record_failure(st.lease, text):
                    self._drop(st)
            except TidingsError:
                pass  # the count is best effort; the shard is backing off anyway

    def _drop(self, st: _Shard) -> None:
        log.warning("relay %s lost shard %d (fenced)", self.config.owner, st.shard)
        st.lease = None
        st.acquire_at = time.monotonic() + min(self.config.lease_s / 4, 1.0)

    def _drained(self) -> bool:
        failing = [st for st in self._shards if st.lease is not None and st.failures]
        if failing:
            raise failing[0].error  # type: ignore[misc]
        return True

    def _wait(self, timeout: float) -> None:
        if self._polls:  # no NOTIFY from this outbox's writers: look again soon
            time.sleep(min(timeout, self.config.pg_poll_s))
            return
        try:
            self.db.wait(timeout)
        except TidingsError as exc:  # the listening connection broke: reopened next time
            log.warning("waiting for outbox changes failed (%s); polling once", exc)
            time.sleep(min(timeout, self.config.backoff_base_s))

    def _sleep(self) -> float:
        """Until the next lease renewal, acquire attempt or retry, at most 1 s
        (a change in the outbox wakes the wait sooner)."""
        now = time.monotonic()
        wake = [now + self.config.lease_s / 4]
        for st in self._shards:
            if st.lease is None:
                wake.append(st.acquire_at)
            elif st.failures:
                wake.append(st.retry_at)
        return max(0.0, min(min(wake) - now, 1.0))

    # ---- lifecycle --------------------------------------------------------
    def held(self) -> list[int]:
        """The shards this relay holds a lease on (as far as it knows)."""
        return [st.shard for st in self._shards if st.lease is not None]

    def release(self) -> None:
        """Give every held shard up at once (a standby need not wait)."""
        for st in self._shards:
            if st.lease is not None:
                try:
                    self.store.release(st.lease)
                except TidingsError:
                    pass  # it expires on its own
                st.lease, st.acquire_at = None, 0.0

    def close(self) -> None:
        self.release()
        self.forwarder.close()
        if self._own_client:
            self.client.close()
        self.db.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
