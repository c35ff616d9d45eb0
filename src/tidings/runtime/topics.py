"""The loop of one topic handler: a consumer-group member that hands each
partition's records to the handler strictly in order (R1), partitions (or,
with ``ordering="key"``, keys) concurrently, and commits only the
contiguous prefix of each partition that was handled.

Delivery marks (R2): before a partition's records go to the handler, the
loop stores ``(offset, attempts, end)`` for it. Should the process die
there, the next owner finds the mark at its committed offset, counts a
further delivery, and handles the range one record at a time: the record
that kills its process is counted like any failure and parked after
``policy.rounds`` deliveries. One mark write per poll and partition, so
counting costs nothing per record.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..client.consumer import Consumer
from ..errors import FencedError, TidingsError
from ..message import Record, TopicPartition
from ..ports.engine import Engine
from ..ports.failed import DeliveryMark, FailedStore
from ..tracing import traced
from .handlers import HandlerSpec, make_call
from .lanes import Lanes, const, merge, split_by_key, topic_result
from .lifecycle import Lifecycle, Stop
from .transaction import as_list, engine_transaction

log = logging.getLogger("tidings.runtime")
MAX_AHEAD = 100_000  # records of other keys remembered as done while a key waits


@dataclass
class _Partition:
    next: int  # first offset not yet handled
    committed: int
    resume_at: float = 0.0
    paused_since: float = 0.0
    alerted: bool = False
    done_ahead: set[int] = field(default_factory=set)
    # ordering="key": keys waiting (key -> resume time) while others flow,
    # rounds so far of their waiting records, the first record left out.
    waiting: dict[Any, float] = field(default_factory=dict)
    rounds: dict[int, int] = field(default_factory=dict)
    held: int | None = None


class TopicLoop:
    """Runs one topic handler until ``stop`` is set (R4: then it finishes
    the poll in hand, commits and leaves the group)."""

    def __init__(
        self,
        app: Any,
        spec: HandlerSpec,
        engine: Engine,
        store: FailedStore,
        stop: threading.Event,
    ) -> None:
        assert spec.topic is not None and spec.group is not None
        self.app, self.spec, self.store, self.stop = app, spec, store, stop
        self.topic, self.group, self.engine = spec.topic, spec.group, engine
        self.life = Lifecycle(app.name, spec, store, app.alerts, spec.group)
        # transaction=: offsets committed in each handler transaction (next to read)
        self.tx_done: dict[TopicPartition, int] = {}
        self.tx = engine_transaction(spec, engine, self._commit_in, self._committed_in)
        call = traced(app.name, spec.name, spec.is_async, make_call(spec, self.tx))
        self.lanes = Lanes(spec, call, self.life)
        self.parts: dict[TopicPartition, _Partition] = {}
        self.marks: dict[int, DeliveryMark] = {}
        self.handled = 0
        self._pool = ThreadPoolExecutor(spec.concurrency) if spec.concurrency > 1 else None
        self._loop = asyncio.new_event_loop() if spec.is_async else None
        self.consumer = Consumer(
            engine, [self.topic], self.group, start=spec.start, auto_commit=False,
            on_revoke=self._revoked, group_config=spec.group_config,
        )  # fmt: skip
        self._blocked_refresh = 0.0

    # ---- the loop ------------------------------------------------------------
    def step(self) -> None:
        self._refresh_blocked()
        self._resume_due()
        wait = self._poll_wait()
        records = self.consumer.poll(wait, self.spec.max_in_flight)
        try:
            self._sync_assignment(records)
            if records:
                self._handle(records)
            self._commit()
        except BaseException as exc:
            self._rewind()
            if self.tx is not None and isinstance(exc, FencedError):
                log.warning("%s: %s; its new owner handles the rest", self.spec.name, exc)
                return
            raise

    def _rewind(self) -> None:
        """After a failure between fetch and commit (an engine error), read
        again from the first record not handled: the fetch moved the
        consumer's positions past records nobody handled."""
        owned = self.consumer.assignment()
        for tp, part in self.parts.items():
            if tp in owned:
                self.consumer.seek(tp, self._floor(tp, part))

    def _floor(self, tp: TopicPartition, part: _Partition) -> int:
        """``part.next``, moved past what handler transactions committed
        (``transaction=``): never handled, nor committed, again."""
        done = self.tx_done.get(tp)
        if done is not None and done > part.next:
            part.next = done
        return part.next

    def _commit_in(self, conn: Any, message: Any) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in as_list(message):
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        self.consumer.commit(offsets, connection=conn)

    def _committed_in(self, message: Any) -> None:
        for r in as_list(message):
            tp = TopicPartition(r.topic, r.partition)
            self.tx_done[tp] = max(self.tx_done.get(tp, 0), r.offset + 1)

    def _poll_wait(self) -> float:
        pending = [p.resume_at for p in self.parts.values() if p.resume_at]
        pending += [at for p in self.parts.values() for at in p.waiting.values()]
        until = min(pending) - time.monotonic() if pending else 0.5
        return max(0.0, min(0.5, until))

    def _handle(self, records: list[Record]) -> None:
        chunks = _by_partition(records)
        work = {tp: self._prepare(tp, rs) for tp, rs in chunks.items() if tp in self.parts}
        work = {tp: w for tp, w in work.items() if w}
        self._store_marks(work)
        started = time.perf_counter()
        results = self._run_all(work)
        self.life.metrics.observe(time.perf_counter() - started)
        for tp, result in results.items():
            self._apply(tp, work[tp], result)

    # ---- marks and careful mode ----------------------------------------------------
    def _prepare(self, tp: TopicPartition, records: list[Record]) -> list[Record]:
        part = self.parts[tp]
        # Re-read after a seek back: skip what was handled.
        if records[0].offset < self._floor(tp, part):
            records = [r for r in records if r.offset >= part.next]
        if part.done_ahead:
            records = self._skip_done(part, records)
        if part.waiting:  # a waiting key's records stay for later, unhandled
            held = [r.offset for r in records if r.key in part.waiting]
            if held:
                part.held = min(held[0], part.held if part.held is not None else held[0])
                records = [r for r in records if r.key not in part.waiting]
        if not records:
            return []
        start = records[0].offset
        mark = self.marks.get(tp.partition)
        if mark is not None and mark.offset == start:
            attempts, end, careful = mark.attempts + 1, max(mark.suspect_end, start + 1), True
        elif mark is not None and start < mark.suspect_end:
            attempts, end, careful = 1, mark.suspect_end, True
        else:
            attempts, end, careful = 1, start + len(records), False
        self.marks[tp.partition] = DeliveryMark(start, attempts, end)
        return records[:1] if careful else records

    def _skip_done(self, part: _Partition, records: list[Record]) -> list[Record]:
        """Leave out records handled while an earlier key waited
        (``ordering="key"``); a fetch of nothing else moves past them."""
        out = [r for r in records if r.offset not in part.done_ahead]
        if not out:
            part.next = records[-1].offset + 1
            part.done_ahead = {o for o in part.done_ahead if o >= part.next}
        return out

    def _store_marks(self, work: dict[TopicPartition, list[Record]]) -> None:
        for tp in work:  # one small upsert per partition, not fsynced
            self.store.mark(self.group, tp.topic, tp.partition, self.marks[tp.partition])

    def _attempts(self, tp: TopicPartition) -> int:
        mark = self.marks.get(tp.partition)
        return mark.attempts if mark is not None else 1

    # ---- running the handler ------------------------------------------------------
    def _run_all(self, work: dict[TopicPartition, list[Record]]) -> dict[TopicPartition, Any]:
        if self.spec.max_processing is None:
            return self._run_jobs(work)
        # A hung handler must not hold its partitions forever: past the
        # limit the member's session lapses and others take over (L4 fences
        # this member's late commit).
        watchdog = threading.Timer(self.spec.max_processing, self._hung)
        watchdog.daemon = True
        watchdog.start()
        try:
            return self._run_jobs(work)
        finally:
            watchdog.cancel()

    def _hung(self) -> None:
        log.warning(
            "%s: handling took over %.1fs; giving up its partitions",
            self.spec.name, self.spec.max_processing,
        )  # fmt: skip
        self.consumer.expire_session()

    def _run_jobs(self, work: dict[TopicPartition, list[Record]]) -> dict[TopicPartition, Any]:
        """Every lane of every partition at once (up to ``concurrency``),
        then each partition's lanes merged back into its result."""
        results: dict[TopicPartition, Any] = {}
        lanes: dict[TopicPartition, list[list[Record]]] = {}
        for tp, records in work.items():
            attempts = self._attempts(tp)
            if self.life.over_limit(attempts):
                results[tp] = self.lanes.unfinished(records[0], attempts)
            elif self.spec.ordering == "key":
                lanes[tp] = split_by_key(records)
            else:
                lanes[tp] = [records]
        flat = [(tp, lane) for tp, ls in lanes.items() for lane in ls]
        outs = iter(self._run_lanes(flat))
        for tp, ls in lanes.items():
            mine = [next(outs) for _ in ls]
            keyed = self.spec.ordering == "key"
            results[tp] = merge(ls, mine) if keyed else topic_result(ls[0], mine[0])
        return results

    def _run_lanes(self, flat: list[tuple[TopicPartition, list[Record]]]) -> list[Any]:
        run = self.lanes.runner()
        args = [(lane, self._round_of(tp)) for tp, lane in flat]
        if self._loop is not None:
            return self._loop.run_until_complete(_gather([run(*a) for a in args]))
        if self._pool is None or len(args) == 1:
            return [run(*a) for a in args]
        futures = [self._pool.submit(run, *a) for a in args]
        return [f.result() for f in futures]

    def _apply(self, tp: TopicPartition, records: list[Record], result: Any) -> None:
        part = self.parts.get(tp)
        if part is None:
            return  # revoked meanwhile
        handled, stop, ahead = result[:3]
        self.handled += handled
        self.life.breaker.success(handled)
        if self.spec.ordering == "key" and (result.waits or part.held is not None or part.waiting):
            self._key_waits(tp, part, records, result)
            return
        part.next = stop[0] if stop is not None else records[-1].offset + 1
        if ahead or part.done_ahead:
            part.done_ahead = {o for o in (*part.done_ahead, *ahead) if o >= part.next}
        if stop is not None:
            self._pause(tp, part, stop[0], stop[1])
        if self.consumer.position(tp) != part.next:
            self.consumer.seek(tp, part.next)  # re-read what was not handled

    def _key_waits(
        self, tp: TopicPartition, part: _Partition, records: list[Record], result: Any
    ) -> None:
        """``ordering="key"``: only the stopped keys wait; the partition
        keeps flowing. Its commit stays before the first waiting record;
        what other keys handled beyond it is remembered as done."""
        done = result.done or tuple(r.offset for r in records[: result.handled])
        floor = [records[-1].offset + 1, *(o for o, _, _ in result.waits)]
        if part.held is not None:
            floor.append(part.held)
        part.next = min(floor)
        part.held = part.next if result.waits or part.held is not None else None
        for offset, key, stop in result.waits:
            part.waiting[key] = stop.resume_at
            part.rounds[offset] = self._round_of(tp)(records[0]._replace(offset=offset))
        part.done_ahead = {o for o in (*part.done_ahead, *done) if o >= part.next}
        part.rounds = {o: n for o, n in part.rounds.items() if o >= part.next}
        if len(part.done_ahead) > MAX_AHEAD:  # bound memory: the whole partition waits
            part.resume_at = min(part.waiting.values())
            self.consumer.pause([tp])
            self.consumer.seek(tp, part.next)

    def _round_of(self, tp: TopicPartition) -> Callable[[Any], int]:
        attempts = self._attempts(tp)
        part = self.parts.get(tp)
        if part is None or not part.rounds:
            return const(attempts)
        rounds = part.rounds
        return lambda m: max(attempts, rounds.get(m.offset, 0) + 1)

    def _pause(self, tp: TopicPartition, part: _Partition, offset: int, stop: Stop) -> None:
        mark = self.marks.get(tp.partition)
        if stop.whole and mark is not None:
            # The breaker held it back: waiting out an outage is no delivery round.
            attempts = mark.attempts - 1 if mark.offset == offset else 0
            self.marks[tp.partition] = DeliveryMark(offset, attempts, mark.suspect_end)
        elif mark is not None and mark.offset != offset:
            # Failed inside a range: the next round of this record is its second.
            self.marks[tp.partition] = DeliveryMark(offset, 1, max(mark.suspect_end, offset + 1))
            self.store.mark(self.group, tp.topic, tp.partition, self.marks[tp.partition])
        targets = list(self.parts) if stop.whole else [tp]
        now = time.monotonic()
        for t in targets:
            p = self.parts[t]
            p.resume_at = max(p.resume_at, stop.resume_at)
            p.paused_since = p.paused_since or now
        self.consumer.pause(targets)
        self._alert_long_pause(tp, part, now)

    def _alert_long_pause(self, tp: TopicPartition, part: _Partition, now: float) -> None:
        if not part.alerted and now - part.paused_since >= self.app.alert_pause_after:
            part.alerted = True
            self.app.alerts.send(
                "paused", self.app.name, self.spec.name, topic=tp.topic, partition=tp.partition,
                paused_s=round(now - part.paused_since, 1),
            )  # fmt: skip

    def _resume_due(self) -> None:
        now = time.monotonic()
        for tp, part in self.parts.items():
            due = [k for k, at in part.waiting.items() if at <= now]
            for key in due:
                del part.waiting[key]
            if due:  # re-read from the first unhandled record; handled ones are skipped
                part.held = None
                if self.consumer.position(tp) != part.next:
                    self.consumer.seek(tp, part.next)
        due = [tp for tp, p in self.parts.items() if p.resume_at and p.resume_at <= now]
        for tp in due:
            self.parts[tp].resume_at = 0.0
        if due:
            self.consumer.resume(due)

    # ---- assignment, commits, blocked keys ----------------------------------------------
    def _sync_assignment(self, records: list[Record]) -> None:
        owned = self.consumer.assignment()
        for tp in set(self.parts) - owned:  # fenced: in-flight is redelivered elsewhere
            del self.parts[tp]
            self.tx_done.pop(tp, None)
        new = owned - set(self.parts)
        if not new:
            return
        self.marks.update(self.store.marks(self.group, self.topic))
        first: dict[TopicPartition, int] = {}
        for r in records:  # a partition that arrived in this poll starts where it was read
            first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
        for tp in new:
            pos = first.get(tp, self.consumer.position(tp))
            self.parts[tp] = _Partition(next=pos, committed=-1)
        self.consumer.resume(new)

    def _revoked(self, tps: set[TopicPartition]) -> None:
        self._commit(tps)  # nothing is in flight: handling happens between polls
        for tp in tps:
            self.parts.pop(tp, None)
            self.tx_done.pop(tp, None)

    def _commit(self, only: set[TopicPartition] | None = None) -> None:
        todo = {
            tp: self._floor(tp, p)
            for tp, p in self.parts.items()
            if p.next != p.committed and (only is None or tp in only)
        }
        if not todo:
            return
        try:
            self.consumer.commit(todo)
        except FencedError:
            log.warning(
                "%s: commit fenced; the new owner re-reads from the last commit", self.spec.name
            )
            return
        for tp, offset in todo.items():
            self.parts[tp].committed = offset
            if self.parts[tp].resume_at == 0.0:
                self.parts[tp].paused_since, self.parts[tp].alerted = 0.0, False

    def _refresh_blocked(self) -> None:
        now = time.monotonic()
        if now - self._blocked_refresh < self.app.blocked_refresh_s:
            return
        self._blocked_refresh = now
        try:
            self.life.blocked = self.store.blocked_keys(self.app.name, self.spec.name)
        except TidingsError as exc:
            log.warning("reading blocked keys failed: %s", exc)

    def close(self) -> None:
        try:
            self._commit()
        except TidingsError as exc:  # at-least-once: the rest is redelivered
            log.warning("final commit of %s failed: %s", self.spec.name, exc)
        finally:
            self.consumer.close()
            if self.tx is not None:
                self.tx.close()
            if self._pool is not None:
                self._pool.shutdown()
            if self._loop is not None:
                self._loop.close()


async def _gather(coroutines: list[Any]) -> list[Any]:
    return list(await asyncio.gather(*coroutines))


def _by_partition(records: list[Record]) -> dict[TopicPartition, list[Record]]:
    """A poll's records per partition. A poll returns each partition's
    records as one run, so runs are found without a step per record."""
    first, last = records[0], records[-1]
    if first.partition == last.partition and first.topic == last.topic:
        return {TopicPartition(first.topic, first.partition): records}
    chunks: dict[TopicPartition, list[Record]] = {}
    for (topic, partition), run in itertools.groupby(records, key=_TP):
        chunks.setdefault(TopicPartition(topic, partition), []).extend(run)
    return chunks


_TP = operator.itemgetter(0, 1)
