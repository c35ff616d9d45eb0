"""The consumer: standalone or as a member of a consumer group (L4, L5).

Reading is the engine's :class:`~tidings.ports.cursor.Cursor`'s business
(it keeps the *fetched* positions, the next offset to read); committed
offsets and membership are the engine's
:class:`~tidings.ports.groups.GroupCoordinator`'s. With a group, partitions
arrive and leave through :class:`~.membership.Membership`; ``poll`` applies
those changes, committing a partition before releasing it. Records fetched
but not handed out yet, and what the caller has processed, are
:class:`~.readahead.ReadAhead`'s business, so a commit never covers a record
the caller has not had.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..backoff import Backoff
from ..config import GroupConfig, validate_name
from ..errors import (
    ConfigurationError,
    EngineError,
    FencedError,
    TidingsError,
)
from ..message import Record, TopicPartition
from ..ports.engine import Engine
from .membership import Membership, commit_in
from .readahead import ReadAhead
from .starts import Start, lag, start_offset, start_offsets

log = logging.getLogger("tidings.consumer")
#: Called with the partitions about to be taken away, before they are
#: released (and, with auto-commit, committed): finish and commit their
#: in-flight work here.
RevokeListener = Callable[[set[TopicPartition]], None]


class Consumer:
    """Reads records from topics. Use from one thread (or through AsyncConsumer).

    ``start`` applies where no offset is committed: ``"beginning"``,
    ``"end"``, an offset, or a datetime. With ``group``, offsets are
    committed every ``auto_commit_interval_s`` (at-least-once), on
    rebalance and on close; set ``auto_commit=False`` to call
    :meth:`commit` yourself. ``on_revoke(partitions)`` runs before
    partitions are released in a rebalance (see :data:`RevokeListener`).

    What auto-commit commits (at-least-once): a record counts as processed
    once the caller comes back for more, so

    * records returned by ``poll()`` count when ``poll`` is called again;
      iterating (``for record in consumer``) hands out one record at a
      time, and a yielded record counts when the loop asks for the next one;
    * records read ahead but never returned or yielded never count (leaving
      a ``for`` loop after 3 of 500 fetched records commits 3);
    * the last records handed out (the last ``poll``'s, or the record the
      loop stopped at) count on :meth:`close` and on a ``with`` block left
      normally, but not when the ``with`` block is left by an exception:
      then they are redelivered;
    * ``commit()`` without arguments commits everything handed out.

    Raises ``TopicNotFound``, ``PartitionNotFound``, ``CorruptDataError``
    (from ``poll``; seek past it) and ``FencedError`` (from ``commit``).
    """

    def __init__(  # noqa: PLR0913
        self,
        engine: Engine,
        topics: list[str],
        group: str | None = None,
        *,
        start: Start = "end",
        assign: list[TopicPartition] | None = None,
        auto_commit: bool = True,
        auto_commit_interval_s: float = 1.0,
        group_config: GroupConfig | None = None,
        on_revoke: RevokeListener | None = None,
    ) -> None:
        if not topics and not assign:
            raise ConfigurationError("give the consumer at least one topic")
        for t in topics:
            validate_name("topic", t)
        if group is not None:
            validate_name("group", group)
        if group is not None and assign is not None:
            raise ConfigurationError("use either group (partitions assigned) or assign, not both")
        self._engine = engine
        self._log = engine.log
        self._start = start
        self._group = group
        self._auto_commit = auto_commit and group is not None
        self._commit_every = auto_commit_interval_s
        self._ahead = ReadAhead()
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._committed: dict[TopicPartition, int] = {}
        self._view: object = None  # the membership view last applied
        self._last_commit = time.monotonic()
        self._paused: set[TopicPartition] = set()
        self._on_revoke = on_revoke
        self._recheck = False  # a commit was fenced: check the membership at the next poll
        topics = sorted(set(topics) | {tp.topic for tp in assign or []})
        for t in topics:
            self._log.get_topic(t)  # TopicNotFound early, with a clear message
        self._cursor = engine.open_cursor(topics)
        self._membership: Membership | None = None
        try:
            if group is not None:
                self._membership = Membership(
                    engine, group, tuple(topics), group_config or GroupConfig()
                )
                self._membership.join()
            else:
                chosen = assign or [
                    TopicPartition(t, p)
                    for t in topics
                    for p in range(self._log.get_topic(t).partitions)
                ]
                self._take(set(chosen))
        except BaseException:
            self._cursor.close()  # a failed constructor must not leak the waiter's socket
            raise

    # ---- assignment -------------------------------------------------------
    def assignment(self) -> set[TopicPartition]:
        """The partitions this consumer reads now (safe from any thread)."""
        return set(self._assigned)

    def _take(self, tps: set[TopicPartition]) -> None:
        new = tps - self._assigned
        if not new:
            return
        committed = self._engine.groups.committed(self._group) if self._group else {}
        starts = {}
        for tp in sorted(new & committed.keys()):
            starts[tp] = self._committed[tp] = committed[tp]
        starts |= start_offsets(self._log, new - committed.keys(), self._start)
        self._cursor.assign({**self._cursor.positions(), **starts})
        self._ahead.drop(new)
        self._assigned |= new

    def _set_position(self, tp: TopicPartition, offset: int) -> None:
        """Fetch, hand out and count as processed from ``offset`` on."""
        self._cursor.seek(tp, offset)
        self._ahead.drop({tp})

    def _forget(self, tps: set[TopicPartition]) -> None:
        kept = {tp: o for tp, o in self._cursor.positions().items() if tp not in tps}
        self._cursor.assign(kept)
        for tp in tps:
            self._committed.pop(tp, None)
        self._ahead.drop(tps)
        self._assigned = frozenset(kept)

    def _handed(self) -> dict[TopicPartition, int]:
        return self._ahead.handed(self._cursor.positions())

    def _done(self) -> dict[TopicPartition, int]:
        return self._ahead.processed(self._cursor.positions())

    def _sync_membership(self) -> None:
        m = self._membership
        if m is None:
            return
        if m.fenced or m.session_lapsed() or self._recheck:
            self._recheck = False
            self._check_fenced(m)
        view = m.view
        if view is None or view is self._view:
            return  # nothing changed since the last look (the common case)
        self._view = view
        lost = self._assigned - (view.owned - view.revoke)
        if lost:
            self._give_up(m, set(lost))
        self._take(set(view.owned - view.revoke))

    def _check_fenced(self, m: Membership) -> None:
        try:
            if not m.fenced:
                m.heartbeat()
                return
        except FencedError:
            pass
        # Fenced: everything we held may already be someone else's. Drop it
        # uncommitted (it will be redelivered to the new owner) and rejoin.
        self._forget(set(self._assigned))
        self._view = None
        m.join()

    def _give_up(self, m: Membership, lost: set[TopicPartition]) -> None:
        if self._on_revoke is not None:
            self._on_revoke(lost)  # finishes and commits in-flight work of these
        self._paused -= lost
        self._cursor.resume(frozenset(lost))
        if self._auto_commit:
            try:
                done = self._done()
                self._commit_positions({tp: done[tp] for tp in lost})
            except FencedError:
                pass  # not ours any more: the new owner re-reads from the last commit
        self._forget(lost)
        m.release(lost)

    # ---- reading ----------------------------------------------------------
    def poll(self, timeout: float = 1.0, max_records: int = 10_000) -> list[Record]:
        """Records from the assigned partitions, waiting up to ``timeout``
        seconds for the first one; ``[]`` on timeout. Calling it counts the
        records of the previous call as processed (see the class docstring).
        Retriable engine errors (a database restart) are retried until the
        timeout, so a consumer resumes on its own."""
        got = self._read(timeout, max_records)
        if got is None:
            return self._hand_out(max_records)
        self._ahead.use(got, len(got))  # handed out as read
        return got

    def _fill(self, timeout: float, max_records: int) -> None:
        """Count what was handed out as processed, then make sure the buffer
        holds records unless ``timeout`` passes first."""
        got = self._read(timeout, max_records)
        if got:
            self._ahead.use(got, 0)

    def _read(self, timeout: float, max_records: int) -> list[Record] | None:
        """Count what was handed out as processed; None if records are
        buffered, else what a read returns within ``timeout`` (maybe [])."""
        self._ahead.asked_again()
        if self._ahead.buffered():
            self._maybe_auto_commit()
            self._sync_membership()  # a revoke drops the partition's buffered records
            if self._ahead.buffered():
                return None
        deadline = time.monotonic() + timeout
        backoff = Backoff(0.05, 1.0)
        while True:
            try:
                records = self._poll_once(max_records, deadline)
            except EngineError as exc:
                if not exc.retriable:
                    raise
                log.warning("poll failed (%s); retrying", exc)
                time.sleep(max(0.0, min(backoff.next(), deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    return []
                continue
            if records or time.monotonic() >= deadline:
                return records

    def _take_one(self) -> Record | None:
        """The next record read ahead, handed out; None if none. No I/O."""
        return self._ahead.take_one()

    def _hand_out(self, max_records: int) -> list[Record]:
        """Up to ``max_records`` records read ahead, now handed out."""
        return self._ahead.hand_out(max_records)

    def _poll_once(self, max_records: int, deadline: float) -> list[Record]:
        """One fetch, waiting at most a slice of what is left before
        ``deadline``, so membership and auto-commit are looked after."""
        self._maybe_auto_commit()
        self._sync_membership()
        wait = min(max(0.0, deadline - time.monotonic()), self._wait_slice())
        records = self._cursor.fetch(max_records, wait)
        if records and self._fenced_meanwhile():
            return []  # read for partitions that were no longer ours
        return records

    def _fenced_meanwhile(self) -> bool:
        """True if this member was fenced between the membership check and
        the read (the process was stopped there past its session timeout):
        what it read may belong to another member, so it must not be handed
        out. Costs nothing while heartbeats are fresh."""
        m = self._membership
        if m is None or not (m.fenced or m.session_lapsed()):
            return False
        member_id = m.member_id
        try:
            self._check_fenced(m)  # on fencing: drops positions and rejoins
        except EngineError:
            return False  # cannot tell now; the next poll checks again
        return m.member_id != member_id

    def _wait_slice(self) -> float:
        m = self._membership
        if m is not None and m.view is not None and (m.view.pending or m.view.revoke):
            return 0.05  # a rebalance is under way: look again soon
        return 1.0

    def __iter__(self) -> Iterator[Record]:
        """Yield records one at a time, forever; a yielded record counts as
        processed when the loop asks for the next one (leave the loop and
        close: what was yielded is committed, nothing more)."""
        ahead = self._ahead
        while True:
            chunk, i = ahead.chunk, ahead.next  # re-read: the loop body may poll or seek
            if i >= len(chunk):
                self._fill(1.0, 10_000)
                continue
            ahead.singly = True
            n = len(chunk)
            while True:  # inlined take_one, until the loop body polls, seeks or drops
                i += 1
                ahead.next = i
                yield chunk[i - 1]
                if i >= n or ahead.next != i or not ahead.singly or chunk is not ahead.chunk:
                    break

    # ---- pause / resume ---------------------------------------------------
    def pause(self, tps: Iterable[TopicPartition]) -> None:
        """Stop fetching from these assigned partitions; ``poll`` keeps the
        membership alive and serves the others. Raises ConfigurationError
        for a partition not assigned to this consumer."""
        tps = set(tps)
        if tps - self._assigned:
            raise ConfigurationError(f"{sorted(tps - self._assigned)} not assigned here")
        handed = self._handed()
        for tp in tps:  # records read ahead for them are fetched again on resume
            self._cursor.seek(tp, handed[tp])
        self._ahead.drop(tps)
        self._paused |= tps
        self._cursor.pause(frozenset(tps))

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        """Fetch from these partitions again (unknown ones are ignored)."""
        tps = frozenset(tps)
        self._paused -= tps
        self._cursor.resume(tps)

    def paused(self) -> set[TopicPartition]:
        """The assigned partitions that are paused."""
        return self._paused & self._assigned

    def expire_session(self) -> None:
        """Stop heartbeating, so this member's session runs out: the group
        gives its partitions to other members and its later commits are
        fenced (used when a handler hangs past its maximum processing
        interval). Safe from another thread; the next ``poll`` after the
        session ended rejoins with a new member id."""
        if self._membership is not None:
            self._membership._stop.set()  # the heartbeat thread ends; poll restarts it on rejoin

    # ---- positions --------------------------------------------------------
    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record ``tp`` hands out; raises
        ConfigurationError if ``tp`` is not assigned."""
        if tp not in self._assigned:
            raise ConfigurationError(f"{tp} is not assigned to this consumer")
        return self._handed()[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next (records read ahead are dropped);
        raises ConfigurationError if ``tp`` is not assigned."""
        if tp not in self._assigned:
            raise ConfigurationError(f"{tp} is not assigned to this consumer")
        self._set_position(tp, offset)

    def seek_to(self, where: Start, tps: list[TopicPartition] | None = None) -> None:
        """Seek every (or the given) assigned partition to beginning, end,
        an offset or a time."""
        for tp in tps or sorted(self._assigned):
            self.seek(tp, start_offset(self._log, tp, where))

    def lag(self) -> dict[TopicPartition, int]:
        """Records between each assigned partition's position and its end."""
        return lag(self._log, self._handed())

    # ---- commits ----------------------------------------------------------
    def commit(
        self, offsets: Mapping[TopicPartition, int] | None = None, *, connection: Any = None
    ) -> None:
        """Commit ``offsets`` (default: just past every record handed out so
        far) for the group.

        With ``connection`` (your own sqlite3 / psycopg connection to the
        engine's database, in your open transaction) the offsets are written
        in that transaction: stored iff it commits, together with your own
        writes (exactly-once effect for state in that database). Ownership
        is checked in it; on FencedError nothing of ours was written: roll
        back.

        Raises ConfigurationError without a group, FencedError when this
        member no longer owns a partition, UnsupportedFeature with a
        ``connection`` on an engine that cannot commit in it."""
        if self._group is None:
            raise ConfigurationError("commit needs a consumer group (Consumer(..., group=...))")
        todo = dict(offsets) if offsets is not None else self._handed()
        if connection is None:
            self._commit_positions(todo)
            return
        member = self._membership.member_id if self._membership else None
        try:
            # Not remembered as committed: the caller's transaction may still roll back.
            commit_in(self._engine, connection, self._group, member, todo)
        except FencedError:
            self._recheck = True  # the next poll asks the group at once (rejoins if expired)
            raise

    def _commit_positions(self, offsets: dict[TopicPartition, int]) -> None:
        todo = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        if not todo or self._group is None:
            return
        member = self._membership.member_id if self._membership else None
        self._engine.groups.commit(self._group, member, todo, time.time())
        self._committed.update(todo)
        self._last_commit = time.monotonic()

    def _maybe_auto_commit(self) -> None:
        if self._auto_commit and time.monotonic() - self._last_commit >= self._commit_every:
            try:
                self._commit_positions(self._done())
            except FencedError:
                self._last_commit = time.monotonic()  # _sync_membership rejoins

    def close(self) -> None:
        """Commit what was handed out (with auto-commit), leave the group,
        release resources."""
        self._close(self._handed())

    def _close(self, final: dict[TopicPartition, int]) -> None:
        try:
            if self._auto_commit:
                self._commit_positions(final)
        except FencedError:
            pass  # not ours any more: the new owner re-reads from the last commit
        except TidingsError as exc:  # at-least-once: uncommitted work is redelivered
            log.warning("final commit for group %s failed: %s", self._group, exc)
        finally:
            if self._membership is not None:
                self._membership.leave()
            self._cursor.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # Left by an exception: the records last handed out may not have been
        # processed, so only what the caller came back after is committed.
        self._close(self._handed() if exc_type is None else self._done())
