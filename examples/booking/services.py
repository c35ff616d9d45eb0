"""The services that react to bookings: each is an App in its own consumer
group on the ``bookings`` topic, and keeps its own store — the newest version
of each booking it has seen (so a duplicate delivery changes nothing) and
how many times its effect ran per booking (what the demo checks).

Two of them misbehave on purpose: the fraud scorer's API times out twice on
one booking (a transient failure: retried, then it succeeds), and billing
cannot render one guest's name (a bug: the message is poison, parked as a
failed event while the other bookings flow on, until the fix is deployed).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidings import SerializationError
from tidings.runtime import App, RetryPolicy

Say = Callable[[str, str], None]

# Quick retries so the demo stays short; the defaults are seconds apart.
QUICK = RetryPolicy(immediate=1, delayed=3, backoff=0.05, backoff_max=0.2)


@dataclass
class Booking:
    """The event: a booking's full current state (checked field by field)."""

    id: str
    guest: str
    hotel: str
    nights: int
    amount: int
    paid_with: str
    status: str
    version: int


class Service:
    """One service: an App with one handler, in consumer group ``name``."""

    name = "service"
    policy = QUICK
    on: dict[type[BaseException], RetryPolicy] = {}

    def __init__(self, say: Say) -> None:
        self.say = say
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}  # booking id -> newest version handled
        self.effects: Counter[str] = Counter()  # booking id -> times the effect ran
        self.deliveries = 0
        self.app = App(self.name, alert=self._alert)

        @self.app.handler(topic="bookings", group=self.name, policy=self.policy, on=self.on)
        def on_booking(booking: Booking) -> None:
            self.receive(booking)

    def receive(self, booking: Booking) -> None:
        with self.lock:
            self.deliveries += 1
            if booking.version <= self.seen.get(booking.id, 0):
                return  # a duplicate (redelivery, republish): no effect
            first = booking.id not in self.seen
        if first:
            self.act(booking)  # raises: nothing recorded, the runtime retries
        with self.lock:
            self.seen[booking.id] = booking.version

    def act(self, booking: Booking) -> None:
        """The service's effect, once per booking."""
        self.effects[booking.id] += 1

    def _alert(self, alert: dict[str, Any]) -> None:
        if alert["kind"] == "parked":
            self.say(self.name, f"parked failed event {alert.get('failed_event')} "
                                f"({alert.get('exception')}); the stream flows on")  # fmt: skip


class Email(Service):
    """Sends the confirmation e-mail."""

    name = "email"


class Loyalty(Service):
    """Credits loyalty points."""

    name = "loyalty"


class Fraud(Service):
    """Scores the booking with an external API that times out now and then."""

    name = "fraud"

    def __init__(self, say: Say, flaky: str, timeouts: int = 2) -> None:
        super().__init__(say)
        self.flaky, self.timeouts, self.attempts = flaky, timeouts, 0

    def act(self, booking: Booking) -> None:
        if booking.id == self.flaky:
            self.attempts += 1
            if self.attempts <= self.timeouts:
                self.say(self.name, f"scoring API timed out for {booking.id} "
                                    f"(attempt {self.attempts}): the runtime retries")  # fmt: skip
                raise TimeoutError(f"scoring API timed out for {booking.id}")
            self.say(self.name, f"{booking.id} scored on attempt {self.attempts}: recovered")
        super().act(booking)


class Billing(Service):
    """Renders and sends the invoice. Its printer takes Latin-1 only — a bug
    that turns a guest named outside Latin-1 into a poison message."""

    name = "billing"
    # Retrying a bug cannot help: park at once (like a payload that does not decode).
    policy = RetryPolicy(
        immediate=QUICK.immediate, delayed=QUICK.delayed, backoff=QUICK.backoff,
        backoff_max=QUICK.backoff_max, park_at_once=(SerializationError, UnicodeEncodeError),
    )  # fmt: skip

    def __init__(self, say: Say) -> None:
        super().__init__(say)
        self.encoding = "latin-1"

    def fix(self) -> None:
        """Deploy the fix: invoices in UTF-8."""
        self.encoding = "utf-8"

    def act(self, booking: Booking) -> None:
        invoice = f"Invoice {booking.id}: {booking.guest}, {booking.amount} EUR"
        invoice.encode(self.encoding)  # the bug: UnicodeEncodeError for 'Ł'
        super().act(booking)


class Analytics:
    """Added later: bootstraps from the log (a new group from the beginning)
    and keeps the latest state of every booking."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.app = App("analytics")

        @self.app.handler(topic="bookings", group="analytics", start="beginning")
        def on_booking(booking: dict[str, Any]) -> None:
            self.state[booking["id"]] = booking
