"""The queue loop uses optional queue capabilities only where the engine's
Features declare them (issue 12): a memory engine declaring
``lease_extension``, ``nack_delay`` and ``release`` unsupported stands in
for an engine without them; the calls it would refuse are counted."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from tidings import Client
from tidings.engines.memory import MemoryEngine
from tidings.runtime import App, HandlerContext, Retry, RetryPolicy, Runner


class Bare(MemoryEngine):
    """The memory engine, declaring three optional capabilities absent."""

    def __init__(self) -> None:
        super().__init__("memory://")
        self.features = replace(
            self.features, lease_extension="unsupported", nack_delay="unsupported",
            release="unsupported",
        )  # fmt: skip


def spied(engine: Bare) -> tuple[Client, list[str]]:
    """A client on ``engine`` recording every call of the three capabilities
    (the client would refuse them with UnsupportedFeature)."""
    client = Client(engine=engine)
    used: list[str] = []
    nack, extend, release = client.nack, client.extend_lease, client.release

    def spy_nack(deliveries: Any, delay: Any = 0) -> None:
        if delay:
            used.append("nack_delay")
        nack(deliveries, delay=delay)

    def spy_extend(*args: Any) -> Any:
        used.append("lease_extension")
        return extend(*args)

    def spy_release(*args: Any) -> Any:
        used.append("release")
        return release(*args)

    client.nack, client.extend_lease, client.release = spy_nack, spy_extend, spy_release  # type: ignore[method-assign]
    return client, used


def test_a_retry_waits_in_the_loop_without_nack_delay() -> None:
    client, used = spied(Bare())
    app = App("nodelay")
    calls: list[tuple[int, float]] = []

    @app.handler(queue="q", policy=RetryPolicy(immediate=0, delayed=2))
    def handle(payload: bytes, ctx: HandlerContext) -> Retry | None:
        calls.append((ctx.message.delivery_count, time.monotonic()))
        return Retry(0.3) if ctx.message.delivery_count == 1 else None

    with client:
        client.declare_queue("q", lease="10s")
        client.publish("q", b"x")
        runner = Runner(app, client=client).start()
        try:
            deadline = time.monotonic() + 10
            while len(calls) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            runner.stop()
    assert [c[0] for c in calls] == [1, 2]
    assert calls[1][1] - calls[0][1] >= 0.28  # the pause was kept, in the loop
    assert used == []


def test_no_lease_extension_and_stop_finishes_what_it_holds_without_release() -> None:
    client, used = spied(Bare())
    app = App("nokeep")
    handled: list[bytes] = []
    go, batch = threading.Event(), threading.Event()

    @app.handler(queue="q", max_in_flight=5)
    def handle(payload: bytes) -> None:
        if payload == b"warm":
            assert go.wait(10)
            return
        batch.set()
        time.sleep(0.15)
        handled.append(payload)

    with client:
        client.declare_queue("q", lease="0.2s")  # shorter than the batch: not extended
        client.publish("q", b"warm")
        runner = Runner(app, client=client).start()
        client.publish_batch("q", [b"m%d" % i for i in range(5)])
        go.set()
        assert batch.wait(10)
        runner.stop()
        assert sorted(handled) == [b"m%d" % i for i in range(5)]  # finished, not released
    assert used == []
