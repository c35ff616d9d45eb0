"""Fixtures and helpers shared by the conformance suite's parts."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import pytest

from ..client.client import Client
from ..client.consumer import Consumer
from ..config import GroupConfig
from ..groups.coordinator import GroupState
from ..groups.stored import StoredGroups
from ..message import Record, TopicPartition

#: Short sessions keep group tests fast; the heartbeat is well inside them.
FAST_GROUP = GroupConfig(session_timeout_s=1.0, heartbeat_interval_s=0.1)
#: How long a test waits for something that should take a fraction of it.
PATIENCE_S = 10.0


class ContractBase:
    """Subclass a contract and override :meth:`engine_url` (a fixture)."""

    @pytest.fixture
    def engine_url(self) -> str:
        pytest.fail(f"{type(self).__name__} must override the engine_url fixture")

    @pytest.fixture
    def client(self, engine_url: str) -> Iterator[Client]:
        client = Client(engine_url)
        try:
            yield client
        finally:
            client.close()

    @pytest.fixture
    def topic(self, request: pytest.FixtureRequest) -> str:
        """A topic name no other test uses."""
        stem = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:60]
        return f"{stem}-{uuid.uuid4().hex[:8]}"

    @staticmethod
    def need(client: Client, feature: str) -> None:
        """Skip when the engine declares ``feature`` unsupported."""
        if not client.features.supports(feature):
            pytest.skip(f"{client.url} does not support {feature}")


def expire_sessions(
    client: Client, group: str, members: Callable[[GroupState], Iterable[str]] | None = None
) -> bool:
    """For tests of fencing (L4): end the sessions of ``members(state)``
    (default: every member of ``group``) now, as if their processes had
    been stopped for longer than their session timeout (SIGSTOP). Works on
    engines whose coordinator is the default
    :class:`~tidings.groups.stored.StoredGroups`; returns False and does
    nothing on an engine that coordinates groups natively, where a test
    stops the member's heartbeats (``Consumer.expire_session``) and waits
    out the session timeout instead."""
    groups = client.engine.groups
    if not isinstance(groups, StoredGroups):
        return False
    groups.expire_sessions(group, members or (lambda state: list(state.members)))
    return True


def check_acked(client: Client, acked: list[int | None], expected: list[int]) -> None:
    """The offsets acks named are ``expected`` (L2); on an engine that
    learns offsets only when reading (``Features.append_offsets``
    unsupported), every one is ``None`` instead."""
    if client.features.supports("append_offsets"):
        assert acked == expected
    else:
        assert acked == [None] * len(acked)


def with_option(url: str, name: str, value: str) -> str:
    """``url`` with one more query option (``?`` or ``&`` as needed)."""
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def read_all(client: Client, topic: str, partition: int, offset: int = 0) -> list[Record]:
    """Every record of a partition from ``offset`` on, straight from the engine."""
    out: list[Record] = []
    while True:
        got = client.engine.log.read(topic, partition, offset, 1000)
        if not got:
            return out
        out.extend(got)
        offset = got[-1].offset + 1


def offsets(records: Iterable[Record]) -> list[int]:
    return [r.offset for r in records]


def poll_until(
    consumers: list[Consumer],
    done: Callable[[], bool],
    check: Callable[[], None] = lambda: None,
    patience: float = PATIENCE_S,
) -> list[Record]:
    """Poll every consumer in turn until ``done()``; run ``check()`` after
    each poll (invariants that must hold at every moment). Fails on timeout."""
    deadline = time.monotonic() + patience
    seen: list[Record] = []
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {patience}s")
        for c in consumers:
            seen.extend(c.poll(timeout=0.05))
            check()
    return seen


def wait_for_clock_past(ts_ms: int) -> None:
    """Spin (briefly) until the wall clock is past ``ts_ms``: records
    appended afterwards get a later log-append timestamp."""
    deadline = time.monotonic() + 1.0
    while time.time() * 1000 <= ts_ms + 2:
        if time.monotonic() > deadline:
            pytest.fail("the wall clock did not advance")
        time.sleep(0.001)


def tps(topic: str, n: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(n)}


def wakeup_latency(
    consume_on: Client, produce_on: Client, topic: str
) -> tuple[list[Record], float]:
    """Produce one record through ``produce_on`` while a consumer of
    ``consume_on`` waits in ``poll``; return what it got and how long after
    the produce it returned."""
    got: list[Record] = []
    polling = threading.Event()
    with consume_on.consumer(topic, start="end") as c:

        def wait() -> None:
            polling.set()
            got.extend(c.poll(timeout=30))

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert polling.wait(10)
        time.sleep(0.2)  # let poll reach its wait: no event marks that moment
        start = time.monotonic()
        produce_on.produce(topic, b"ping")
        waiter.join(30)
        return got, time.monotonic() - start
