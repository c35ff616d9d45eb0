"""``App``: decorated handlers for topics and queues (R1–R5).

::

    from tidings.runtime import App

    app = App("billing")

    @app.handler(topic="bookings")
    def on_booking(booking: dict) -> None:
        ...

Run it with ``tidings run module:app`` (or ``app.run(url)``); test it with
:func:`tidings.runtime.testing.running`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import GroupConfig, validate_name
from ..errors import ConfigurationError
from .alerts import AlertHook, Alerts
from .handlers import HandlerSpec, Middleware, Ordering, check_middleware, inspect_handler
from .policy import BreakerPolicy, Classifier, Policies, RetryPolicy


class App:
    """A named set of handlers. ``alert``: a callable taking the alert dict,
    or a webhook URL (see alerts.py); ``alert_pause_after``: seconds a
    partition may stay paused before a ``paused`` alert.

    Raises ConfigurationError for a bad name or option."""

    def __init__(
        self,
        name: str,
        *,
        alert: AlertHook | str | None = None,
        alert_pause_after: float = 300.0,
        blocked_refresh_s: float = 2.0,
    ) -> None:
        validate_name("app", name)
        if alert_pause_after < 0 or blocked_refresh_s <= 0:
            raise ConfigurationError("alert_pause_after must be >= 0 and blocked_refresh_s > 0")
        self.name = name
        self.alerts = Alerts(alert)
        self.alert_pause_after = alert_pause_after
        self.blocked_refresh_s = blocked_refresh_s
        self.handlers: dict[str, HandlerSpec] = {}

    def handler(  # noqa: PLR0913 - keyword-only options of one handler
        self,
        *,
        topic: str | None = None,
        queue: str | None = None,
        group: str | None = None,
        name: str | None = None,
        batch: bool = False,
        concurrency: int = 1,
        ordering: Ordering = "partition",
        policy: RetryPolicy | None = None,
        on: Mapping[type[BaseException], RetryPolicy] | None = None,
        classify: Classifier | None = None,
        breaker: BreakerPolicy | None = None,
        middleware: Sequence[Middleware] = (),
        start: Any = "beginning",
        max_in_flight: int = 1000,
        inbox: Any = None,
        group_config: GroupConfig | None = None,
        max_processing: float | None = None,
        transaction: Callable[[], Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register the decorated function as the handler of a topic (its own
        consumer group ``<app>.<handler>`` unless ``group`` is given) or of a
        queue. ``concurrency``: partitions / FIFO groups / keys handled at
        once. ``ordering="key"``: within a partition, only records of the
        same key wait for each other. ``policy``/``on``/``classify``/
        ``breaker``: the failure lifecycle (policy.py). ``max_in_flight``:
        records fetched (leased) at a time — the backpressure bound.
        ``inbox``: an :class:`~tidings.runtime.Inbox` (R5). ``group_config``:
        session timeout and heartbeats of the handler's group membership.
        ``max_processing``: seconds one fetch's records may take; past it the
        member lets its session lapse, so its partitions go to other
        members and its late commit is fenced (topics only).
        ``transaction``: for state in the engine's own database, a function
        returning a new connection to it (sqlite3 / psycopg); each message's
        handler call and its offset commit or ack run in one transaction on
        it, ``ctx.connection`` (exactly-once effect; see transaction.py).

        Raises ConfigurationError at definition for bad options, a payload
        type no codec can build, or a duplicate handler name."""
        if (topic is None) == (queue is None):
            raise ConfigurationError("a handler takes exactly one of topic=... or queue=...")
        _check_numbers(concurrency, max_in_flight, ordering)
        _check_transaction(transaction, inbox, ordering, topic)
        if max_processing is not None and max_processing <= 0:
            raise ConfigurationError(f"max_processing must be > 0 seconds, got {max_processing}")
        policies = Policies(
            policy or RetryPolicy(), dict(on or {}), classify, breaker or BreakerPolicy()
        )

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            handler_name = name or fn.__name__
            self._add(
                handler_name, fn, topic, queue, group, batch, concurrency, ordering, policies,
                tuple(middleware), start, max_in_flight, inbox,
                (group_config, max_processing, transaction),
            )  # fmt: skip
            return fn

        return register

    def _add(self, name: str, fn: Callable[..., Any], topic: str | None, queue: str | None,
             group: str | None, *rest: Any) -> None:  # fmt: skip
        batch, concurrency, ordering, policies, middleware, start, max_in_flight, inbox, timing = (
            rest
        )
        validate_name("handler", name)
        if name in self.handlers:
            raise ConfigurationError(f"app {self.name} already has a handler named {name!r}")
        for kind, value in (("topic", topic), ("queue", queue), ("group", group)):
            if value is not None:
                validate_name(kind, value)
        is_async, takes_ctx, decode = inspect_handler(fn, batch)
        _check_inbox(name, inbox, batch)
        check_middleware(name, middleware, is_async)
        if topic is not None and group is None:
            group = f"{self.name}.{name}"
        self.handlers[name] = HandlerSpec(
            name, fn, topic, queue, group, batch, concurrency, ordering, policies, middleware,
            start, max_in_flight, inbox, is_async, takes_ctx, decode, *timing,
        )  # fmt: skip

    def run(self, url: str | None = None) -> None:
        """Run every handler until SIGTERM/SIGINT, then shut down gracefully
        (R4). Raises TopicNotFound / QueueNotFound for missing sources."""
        from .runner import Runner

        runner = Runner(self, url)
        runner.run_until_signal()


def _check_numbers(concurrency: int, max_in_flight: int, ordering: str) -> None:
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    if max_in_flight < 1:
        raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight}")
    if ordering not in ("partition", "key"):
        raise ConfigurationError(f"ordering must be partition or key, not {ordering!r}")


def _check_transaction(transaction: Any, inbox: Any, ordering: str, topic: str | None) -> None:
    if transaction is None:
        return
    if not callable(transaction):
        raise ConfigurationError(
            "transaction= takes a function returning a new connection to the engine's database"
        )
    if inbox is not None:
        raise ConfigurationError("use either inbox= or transaction=, not both")
    if topic is not None and ordering == "key":
        # The committed offset cannot pass a waiting key's records, so a
        # later key's commit could not go with its handler's transaction.
        raise ConfigurationError('transaction= needs ordering="partition" for a topic')


def _check_inbox(name: str, inbox: Any, batch: bool) -> None:
    from .inbox import Inbox

    if inbox is None:
        return
    if not isinstance(inbox, Inbox):
        raise ConfigurationError(f"inbox of {name} must be a tidings.runtime.Inbox")
    if batch:
        raise ConfigurationError(f"{name}: an inbox works per message, not with batch handlers")
