"""Handing a run of messages to a handler, in order, with the lifecycle.

A *lane* is a sequence that must be handled strictly in order: a
partition's records, a key's records (``ordering="key"``), a FIFO group's
messages. :meth:`Lanes.sequence` handles one lane until it ends or a
message must wait (a :class:`Stop`); everything before that point is
handled (succeeded, or parked). The order of calls and decisions is
written once (generators); only the call itself is sync or async.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from ..errors import FencedError, LeaseLost
from .handlers import HandlerSpec, Message, key_of
from .lifecycle import AGAIN, Lifecycle, Stop


class Outcome(NamedTuple):
    """``handled`` messages of the lane were done with (in order); the
    lane stopped at ``lane[handled]`` with ``stop`` unless ``stop is None``."""

    handled: int
    stop: Stop | None


class TopicResult(NamedTuple):
    """A partition's outcome: how many records were handled, where and why
    it stopped (``(offset, Stop)``), and, with ``ordering="key"``, the
    offsets after that point already handled (other keys went on)."""

    handled: int
    stop: tuple[int, Stop] | None
    ahead: tuple[int, ...] = ()
    #: ``ordering="key"``: every stopped key lane as ``(offset, key, Stop)``
    #: and every handled offset, so only those keys wait.
    waits: tuple[tuple[int, Any, Stop], ...] = ()
    done: tuple[int, ...] = ()


#: One handler call: the function (``call`` or ``call1``) and its argument.
Call = tuple[Callable[[Any], Any], Any]
#: A lane's handling: yields calls, receives their results, returns the outcome.
Steps = Generator[Call, Any, Outcome]


def _failed(out: Any) -> bool:
    """A handler result that is not a success: Retry and Reject."""
    return out is not None and type(out).__module__ == "tidings.runtime.outcomes"


class Lanes:
    """``halt``: when it returns true, a lane ends before its next message
    (``Outcome(i, None)`` with ``i < len(lane)``: the rest was not handed
    to the handler; the queue loop gives it back uncounted on shutdown)."""

    def __init__(
        self,
        spec: HandlerSpec,
        call: Callable[[Any], Any],
        life: Lifecycle,
        halt: Callable[[], bool] | None = None,
    ) -> None:
        self.spec, self.life, self.halt = spec, life, halt
        # transaction=: a commit fenced or a lease lost in the handler's
        # transaction is no failure of the message: it goes up to the loop.
        self.lost: tuple[type[Exception], ...] = (
            (FencedError, LeaseLost) if spec.transaction is not None else ()
        )
        self.call = call
        self.call1: Callable[[Any], Any] = (lambda m: call([m])) if spec.batch else call

    # The decisions are written once, as generators that yield ``(fn,
    # arg)`` for each handler call and get its result (or exception) back;
    # a sync and an async driver make the calls.
    def _sequence(self, lane: list[Any], round_of: Callable[[Any], int]) -> Steps:
        life = self.life
        for i, m in enumerate(lane):
            if self.halt is not None and self.halt():
                return Outcome(i, None)
            if life.blocked and key_of(m) in life.blocked and life.still_blocked(key_of(m)):
                stop = life.park_blocked(m, life.blocked[key_of(m)])  # type: ignore[index]
                if stop is not None:
                    return Outcome(i, stop)
                continue
            out = yield self.call1, m
            if out is not None and (isinstance(out, Exception) or _failed(out)):
                stop = yield from self._settle(m, out, round_of(m))
                if stop is not None:
                    return Outcome(i, stop)
        return Outcome(len(lane), None)

    def _settle(self, m: Message, out: Any, round_: int) -> Generator[Call, Any, Stop | None]:
        tries = 1
        while True:
            verdict = self.life.decide(m, out, tries, round_)
            if verdict != AGAIN:
                return verdict  # type: ignore[return-value]
            tries += 1
            out = yield self.call1, m
            if not (isinstance(out, Exception) or _failed(out)):
                self.life.forget(m)
                return None

    def _batch(self, lane: list[Any], round_of: Callable[[Any], int]) -> Steps:
        """A batch handler gets the whole lane; should that keep failing,
        the lane is handled as batches of one to find the culprit."""
        for _ in range(1 + self.spec.policies.default.immediate):
            out = yield self.call, lane
            if not (isinstance(out, Exception) or _failed(out)):
                return Outcome(len(lane), None)
        return (yield from self._sequence(lane, round_of))

    def _drive(self, steps: Steps) -> Outcome:
        try:
            fn, arg = next(steps)
            while True:
                try:
                    out = fn(arg)
                except self.lost:
                    raise
                except Exception as exc:
                    out = exc
                fn, arg = steps.send(out)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _adrive(self, steps: Steps) -> Outcome:
        try:
            fn, arg = next(steps)
            while True:
                try:
                    out = await fn(arg)
                except self.lost:
                    raise
                except Exception as exc:
                    out = exc
                fn, arg = steps.send(out)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def sequence(self, lane: list[Any], round_of: Callable[[Any], int]) -> Outcome:
        return self._drive(self._sequence(lane, round_of))

    def batch(self, lane: list[Any], round_of: Callable[[Any], int]) -> Outcome:
        return self._drive(self._batch(lane, round_of))

    async def asequence(self, lane: list[Any], round_of: Callable[[Any], int]) -> Outcome:
        return await self._adrive(self._sequence(lane, round_of))

    async def abatch(self, lane: list[Any], round_of: Callable[[Any], int]) -> Outcome:
        return await self._adrive(self._batch(lane, round_of))

    def unfinished(self, m: Message, deliveries: int) -> TopicResult:
        """Park a record that was delivered too often without an outcome."""
        stop = self.life.park_unfinished(m, deliveries)
        if stop is not None:
            return TopicResult(0, (m.offset, stop))  # type: ignore[union-attr]
        return TopicResult(1, None)

    def runner(self) -> Callable[[list[Any], Callable[[Any], int]], Any]:
        """The function that handles one lane (a coroutine function for
        async handlers)."""
        if self.spec.is_async:
            return self.abatch if self.spec.batch else self.asequence
        return self.batch if self.spec.batch else self.sequence


def const(n: int) -> Callable[[Any], int]:
    return lambda _m: n


def topic_result(records: list[Any], out: Outcome) -> TopicResult:
    stop = None if out.stop is None else (records[out.handled].offset, out.stop)
    return TopicResult(out.handled, stop)


def split_by_key(records: list[Any]) -> list[list[Any]]:
    lanes: dict[Any, list[Any]] = {}
    for r in records:
        lanes.setdefault(r.key, []).append(r)
    return list(lanes.values())


def merge(lanes: list[list[Any]], outs: list[Outcome]) -> TopicResult:
    """Key lanes back into one partition result: the partition stops at
    the earliest stopped record (a whole-handler stop wins); records of
    other keys after it that were handled are reported ahead, so they are
    not handled again when the partition is re-read."""
    done: list[int] = []
    stops: list[tuple[int, Any, Stop]] = []
    for lane, out in zip(lanes, outs):
        done.extend(r.offset for r in lane[: out.handled])
        if out.stop is not None:
            stops.append((lane[out.handled].offset, lane[0].key, out.stop))
    if not stops:
        return TopicResult(len(done), None, done=tuple(done))
    at = min(offset for offset, _, _ in stops)
    why = next((s for _, _, s in stops if s.whole), min(stops, key=lambda x: x[0])[2])
    ahead = tuple(sorted(o for o in done if o > at))
    waits = () if why.whole else tuple(stops)
    return TopicResult(len(done), (at, why), ahead, waits, tuple(done))
