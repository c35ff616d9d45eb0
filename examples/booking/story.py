"""The booking story, end to end, on the embedded engine (two SQLite files
in ``workdir``: ``app.db``, the booking service's own database with its
outbox, and ``bus.db``, the engine).

``run(workdir, say)`` plays it and returns what it found (``checks.py``
turns that into the checked summary). ``say(who, text)`` is told what
happens as it happens.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidings import Client
from tidings.errors import GroupNotFound
from tidings.outbox import status
from tidings.ports.failed import FailedFilter
from tidings.runtime import Runner
from tidings.runtime.triage import FailedEvents

from . import returns
from .bookings import BookingService, RelayThread
from .services import Analytics, Billing, Email, Fraud, Loyalty, Say, Service

# The script: 48 bookings; b-007's fraud check times out twice; b-013's
# guest breaks billing; some stays get longer, some are cancelled (a refund
# each), and two of those were paid by voucher (no automatic refund).
BOOKINGS = 48
FLAKY = "b-007"
POISON = "b-013"
VOUCHERS = {"b-016", "b-040"}
GUESTS = ("Ada Byron", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov",
          "Donald Knuth", "Frances Allen", "John Backus")  # fmt: skip
HOTELS = ("Lisbon", "Oslo", "Kyoto")
WAIT_S = 40.0  # a stage that takes longer fails its checks instead of hanging


@dataclass
class World:
    """Everything the story ran, for the checks to look at afterwards."""

    workdir: Path
    bus_url: str
    app_url: str
    say: Say
    pace: float
    bus: Client | None = None
    booking: BookingService | None = None
    services: list[Service] = field(default_factory=list)
    analytics: Analytics | None = None
    desk: returns.ReturnsDesk | None = None
    relay: RelayThread | None = None
    runners: list[Runner] = field(default_factory=list)
    events_written: int = 0
    triaged: list[Any] = field(default_factory=list)
    compacted: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)  # what the stores held at the end

    @property
    def groups(self) -> list[str]:
        return [s.name for s in self.services]


def run(workdir: Path, say: Say, pace: float = 0.04) -> World:
    """Play the story in ``workdir`` (which must exist and be empty); every
    service is stopped gracefully on the way out, also on Ctrl-C.

    Raises what the engine and the outbox raise when the files cannot be
    made or used: EngineUnavailable, AlreadyExists (``workdir`` was not
    empty), OutboxSchemaError."""
    w = World(workdir, f"sqlite:///{workdir / 'bus.db'}", f"sqlite:///{workdir / 'app.db'}",
              say, pace)  # fmt: skip
    with _quiet_logs(), contextlib.ExitStack() as stack:
        _setup(w, stack)
        _stage(w, "bookings", _write_bookings)
        _stage(w, "caught_up", _catch_up)
        _stage(w, "triage", _triage)
        _stage(w, "bootstrap", lambda w: _bootstrap(w, stack))
        w.seen = observe(w)
    return w


def _start(w: World, runner: Runner) -> None:
    w.runners.append(runner)
    runner.start()


def _stop_runners(runners: list[Runner]) -> None:
    """Graceful stop (R4) of every service, all at once."""
    for r in runners:
        r.stop_event.set()
    for r in runners:
        r.stop()


def _stage(w: World, name: str, fn: Callable[[World], None]) -> None:
    t0 = time.monotonic()
    fn(w)
    w.timings[name] = round(time.monotonic() - t0, 3)


def _setup(w: World, stack: contextlib.ExitStack) -> None:
    w.bus = stack.enter_context(Client(w.bus_url))
    w.bus.create_topic("bookings", partitions=3, compact=True)
    returns.declare(w.bus)
    w.booking = BookingService(str(w.workdir / "app.db"))
    stack.callback(w.booking.close)
    # Each piece is registered for the clean stop before it starts, so a
    # Ctrl-C at any point stops exactly what runs.
    w.relay = RelayThread(w.app_url, w.bus_url)
    stack.callback(w.relay.close)
    w.relay.start()
    stack.callback(_stop_runners, w.runners)
    w.services = [Email(w.say), Fraud(w.say, FLAKY), Loyalty(w.say), Billing(w.say)]
    for s in w.services:
        _start(w, Runner(s.app, client=w.bus))
    w.desk = returns.ReturnsDesk(w.bus_url, w.say)
    stack.callback(w.desk.close)
    w.desk.start()
    w.say("setup", "topic bookings (3 partitions, compacted), queue returns (+ returns.dlq), "
                   "relay, services email/fraud/loyalty/billing, 3 returns workers")  # fmt: skip


def _write_bookings(w: World) -> None:
    assert w.booking is not None
    for n in range(1, BOOKINGS + 1):
        booking_id = f"b-{n:03d}"
        guest = "Łucja Wróbel" if booking_id == POISON else GUESTS[n % len(GUESTS)]
        paid_with = "voucher" if booking_id in VOUCHERS else "card"
        w.booking.book(booking_id, guest, HOTELS[n % 3], 1 + n % 4, paid_with)
        w.events_written += 1
        _changes(w, n)
        if n % 12 == 0:
            w.say("booking", f"{n} bookings written, {w.events_written} events in the outbox; "
                             f"{_flow(w)}")  # fmt: skip
        time.sleep(w.pace)


def _flow(w: World) -> str:
    """How far each consumer has got, from its own store."""
    assert w.desk is not None
    handled = ", ".join(f"{s.name} {len(s.seen)}" for s in w.services)
    return f"bookings handled: {handled}; refunds settled {w.desk.settled()}"


def _changes(w: World, n: int) -> None:
    assert w.booking is not None
    if n % 5 == 0:
        w.booking.extend(f"b-{n - 1:03d}", 2 + n % 4)
        w.events_written += 1
    if n % 6 == 0:
        w.booking.cancel(f"b-{n - 2:03d}")
        w.events_written += 2  # the new state, and the refund request


def _catch_up(w: World) -> None:
    _wait(w, "the relay to forward every event", lambda: _pending(w) == 0)
    assert w.relay is not None
    w.relay.stop.set()  # every event is out: let it wind down while the rest runs
    _wait(w, "every group to reach the end of the log", lambda: _caught_up(w, w.groups))
    cancelled = sum(b["status"] == "cancelled" for b in _source(w).values())
    desk = w.desk
    assert desk is not None
    _wait(w, "the returns desk to settle every refund", lambda: desk.settled() >= cancelled)
    w.say("services", "every group is at the end of the log")


def _triage(w: World) -> None:
    assert w.bus is not None
    failed = FailedEvents(w.bus, actor="demo")
    parked = failed.find(FailedFilter(app="billing"))
    for e in parked:
        w.say("triage", f"failed event {e.id}: {e.exception_type} ({e.exception_message}) "
                        f"at {e.call_site}, {e.topic}[{e.partition}]@{e.offset}, "
                        f"key {(e.key or b'').decode()}, {e.attempts} attempt(s)")  # fmt: skip
    billing = _service(w, "billing")
    assert isinstance(billing, Billing)
    billing.fix()
    w.say("triage", "fix deployed (invoices in UTF-8); republishing the failed event")
    w.triaged = failed.republish([e.id for e in parked]) if parked else []
    _wait(w, "billing to process the republished event",
          lambda: billing.effects[POISON] > 0 and _caught_up(w, w.groups))  # fmt: skip
    w.say("billing", f"{POISON} invoiced after the fix; every other group skipped the duplicate")


def _bootstrap(w: World, stack: contextlib.ExitStack) -> None:
    assert w.bus is not None
    w.compacted = w.bus.compact("bookings")
    w.say("log", f"compacted bookings: {w.compacted} superseded records removed")
    w.analytics = Analytics()
    _start(w, Runner(w.analytics.app, client=w.bus))
    w.say("analytics", "new service: bootstrapping from the beginning of the log")
    _wait(w, "analytics to read the whole log", lambda: _caught_up(w, ["analytics"]))
    w.say("analytics", f"bootstrapped {len(w.analytics.state)} bookings from the log")


# ---- what the stores say ---------------------------------------------------------


def observe(w: World) -> dict[str, Any]:
    """Read every store the checks look at: the source database, the
    outbox, the groups' offsets, the failed events, each service's own
    store, the analytics copy and the queues."""
    assert w.bus is not None and w.desk is not None
    shards = status(w.app_url, "bookings")
    return {
        "source": _source(w),
        "outbox": {"pending": sum(s.pending for s in shards),
                   "forwarded": sum(s.forwarded for s in shards)},
        "lag": {g: _lag(w, g) for g in [*w.groups, "analytics"]},
        "failed": FailedEvents(w.bus).find(FailedFilter(status=None)),
        "services": {s.name: s for s in w.services},
        "analytics": dict(w.analytics.state) if w.analytics else {},
        "dead_letters": w.bus.dead_letters("returns"),
        "returns": w.bus.queue_stats("returns"),
        "desk": w.desk,
    }  # fmt: skip


def _lag(w: World, group: str) -> int | None:
    assert w.bus is not None
    try:
        return sum(p.lag for p in w.bus.describe_group(group).partitions)
    except GroupNotFound:  # the group never started: no lag to speak of
        return None


def _source(w: World) -> dict[str, dict[str, Any]]:
    assert w.booking is not None
    return w.booking.all()


def _pending(w: World) -> int:
    return sum(s.pending for s in status(w.app_url, "bookings"))


def _caught_up(w: World, groups: list[str]) -> bool:
    assert w.bus is not None
    for group in groups:
        with contextlib.suppress(GroupNotFound):  # not created yet: not caught up
            lags = w.bus.describe_group(group).partitions
            if lags and all(p.lag == 0 for p in lags):
                continue
        return False
    return True


def _service(w: World, name: str) -> Service:
    return next(s for s in w.services if s.name == name)


def _wait(w: World, what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            w.say("stalled", f"gave up waiting for {what} after {WAIT_S:.0f}s")
            return
        time.sleep(0.05)


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The runtime logs retries and parks as warnings; the story tells them."""
    logger = logging.getLogger("tidings")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
