"""The failure lifecycle on the memory engine (R1, R2, R3; issue 10)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import pydantic

from tidings import Client
from tidings.ports.failed import FailedFilter
from tidings.runtime import App, BreakerPolicy, HandlerContext, Reject, Retry, RetryPolicy
from tidings.runtime.testing import RunningApp, running

FAST = RetryPolicy(immediate=1, delayed=2, backoff=0.01, backoff_max=0.02)


def topic(partitions: int = 1) -> Any:
    def prepare(client: Client) -> None:
        client.create_topic("events", partitions=partitions)

    return prepare


def parked(r: RunningApp, **filters: Any) -> list[Any]:
    return r.failed.find(FailedFilter(**filters))


def test_transient_failure_is_retried_and_order_is_kept() -> None:
    app = App("shop")
    seen: list[int] = []
    failures = {"left": 4}  # two whole rounds (1 try + 1 immediate retry each)

    @app.handler(topic="events", policy=FAST)
    def handle(payload: dict[str, int]) -> None:
        if payload["n"] == 2 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("downstream hiccup")
        seen.append(payload["n"])

    with running(app, prepare=topic()) as r:
        for n in range(5):
            r.client.produce("events", b'{"n": %d}' % n)
        r.wait_until(lambda: len(seen) == 5)
        assert seen == [0, 1, 2, 3, 4]  # 3 and 4 waited behind 2 (R1)
        assert parked(r) == []


def test_permanent_failure_is_parked_with_every_field_and_others_flow() -> None:
    app = App("shop")
    seen: list[bytes] = []
    alerts: list[dict[str, Any]] = []
    app.alerts.target = alerts.append

    @app.handler(topic="events", policy=FAST)
    def handle(payload: bytes) -> None:
        if payload == b"poison":
            raise KeyError("no such sku")
        seen.append(payload)

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b"a", key="k1")
        r.client.produce(
            "events", b"poison", key="k2",
            headers={"x-tidings-publisher": "orders", "Authorization": "Bearer s3cret",
                     "x-api-key": "k", "trace": "t1"},
        )  # fmt: skip
        r.client.produce("events", b"b", key="k3")
        r.wait_until(lambda: len(seen) == 2 and len(parked(r)) == 1)
        (event,) = parked(r)
        assert seen == [b"a", b"b"]
    assert (event.app, event.handler, event.group) == ("shop", "handle", "shop.handle")
    assert (event.topic, event.partition, event.offset) == ("events", 0, 1)
    assert (event.key, event.payload, event.source) == (b"k2", b"poison", "topic")
    assert event.exception_type == "KeyError" and "no such sku" in event.exception_message
    assert "raise KeyError" in event.traceback and "in handle" in event.call_site
    assert event.attempts == FAST.rounds and len(event.history) == FAST.rounds
    assert event.publisher == "orders" and event.host
    assert (
        event.headers["Authorization"] == "[redacted]"
        and event.headers["x-api-key"] == "[redacted]"
    )
    assert event.headers["trace"] == "t1"
    assert [a["kind"] for a in alerts] == ["parked"]


def test_one_failing_partition_pauses_alone() -> None:
    """Partition of the failing key waits with backoff; the other partitions
    keep flowing meanwhile (R2)."""
    app = App("shop")
    seen: dict[int, list[int]] = defaultdict(list)
    gate = threading.Event()
    policy = RetryPolicy(immediate=0, delayed=50, backoff=0.05, backoff_max=0.05)

    @app.handler(topic="events", policy=policy, concurrency=2)
    def handle(payload: dict[str, int], ctx: HandlerContext) -> None:
        if payload["key"] == 0 and not gate.is_set():
            raise TimeoutError("key 0 is stuck")
        seen[ctx.message.partition].append(payload["n"])

    with running(app, prepare=topic(4)) as r:
        partition_of = {}
        for n in range(40):
            meta = r.client.produce("events", b'{"n": %d, "key": %d}' % (n, n % 4), key=str(n % 4))
            partition_of[n % 4] = meta.partition
        stuck = partition_of[0]
        others = {p for k, p in partition_of.items() if p != stuck}
        r.wait_until(
            lambda: (
                sum(len(seen[p]) for p in others)
                == sum(10 for k in range(1, 4) if partition_of[k] != stuck)
            )
        )
        assert seen[stuck] == [] or all(n % 4 != 0 for n in seen[stuck])
        gate.set()
        r.wait_until(lambda: sum(len(v) for v in seen.values()) == 40)
        assert all(v == sorted(v) for v in seen.values())  # order within each partition
        assert parked(r) == []


def test_one_failing_key_within_a_partition_with_key_ordering() -> None:
    app = App("shop")
    seen: list[str] = []
    policy = RetryPolicy(immediate=0, delayed=1, backoff=0.01, backoff_max=0.01)

    @app.handler(topic="events", policy=policy, ordering="key", concurrency=2)
    def handle(payload: str, ctx: HandlerContext) -> None:
        if ctx.message.key == b"bad":
            raise ValueError("bad key")
        seen.append(payload)

    with running(app, prepare=topic(1)) as r:
        for i in range(6):
            r.client.produce("events", f"good-{i}", key="good")
            r.client.produce("events", f"bad-{i}", key="bad")
        r.wait_until(lambda: len(parked(r)) == 6)
        assert seen == [f"good-{i}" for i in range(6)]  # each once, in key order
        assert [e.payload for e in parked(r)] == [f"bad-{i}".encode() for i in range(6)]


class Order(pydantic.BaseModel):
    id: int
    amount: float


def test_malformed_payload_is_parked_at_once_not_a_crash() -> None:
    app = App("shop")
    seen: list[Order] = []

    @app.handler(topic="events", policy=FAST)
    def handle(order: Order) -> None:
        seen.append(order)

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b'{"id": 1, "amount": 2.5}')
        r.client.produce("events", b'{"id": "x"}')
        r.client.produce("events", b"\xff not json")
        r.client.produce("events", b'{"id": 2, "amount": 1}')
        r.wait_until(lambda: len(seen) == 2 and len(parked(r)) == 2)
        assert [o.id for o in seen] == [1, 2]
        events = parked(r)
        assert {e.exception_type for e in events} == {"tidings.errors.SerializationError"}
        assert all(e.attempts == 1 for e in events)  # poison: no retries
        assert r.runner.health()["ready"]


def test_handlers_may_return_retry_and_reject() -> None:
    app = App("shop")
    seen: list[bytes] = []
    retried: list[float] = []

    @app.handler(topic="events", policy=FAST)
    def handle(payload: bytes) -> Retry | Reject | None:
        if payload == b"expired":
            return Reject("flight already left")
        if payload == b"later" and not retried:
            retried.append(time.monotonic())
            return Retry(0.05)
        seen.append(payload)
        return None

    with running(app, prepare=topic()) as r:
        for body in (b"a", b"later", b"expired", b"b"):
            r.client.produce("events", body)
        r.wait_until(lambda: len(seen) == 3 and len(parked(r)) == 1)
        assert seen == [b"a", b"later", b"b"]
        (event,) = parked(r)
        assert event.exception_type == "Reject" and event.exception_message == "flight already left"


def test_domain_policy_function_and_per_exception_policies() -> None:
    app = App("shop")
    attempts: dict[bytes, int] = defaultdict(int)
    no_retry = RetryPolicy(immediate=0, delayed=0)

    def classify(exc: BaseException, message: Any) -> Reject | None:
        return Reject("stale notice dropped") if isinstance(exc, LookupError) else None

    @app.handler(topic="events", policy=FAST, on={PermissionError: no_retry}, classify=classify)
    def handle(payload: bytes) -> None:
        attempts[payload] += 1
        raise {b"denied": PermissionError, b"stale": LookupError}[payload]("x")

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b"denied")
        r.client.produce("events", b"stale")
        r.wait_until(lambda: len(parked(r)) == 2)
        kinds = {e.payload: e.exception_type for e in parked(r)}
    assert attempts == {b"denied": 1, b"stale": 1}
    assert kinds == {b"denied": "PermissionError", b"stale": "Reject"}


def test_block_key_parks_later_messages_of_the_key_others_flow() -> None:
    app = App("shop", blocked_refresh_s=0.05)
    seen: list[bytes] = []
    alerts: list[str] = []
    app.alerts.target = lambda a: alerts.append(a["kind"])
    policy = RetryPolicy(immediate=0, delayed=0, on_exhausted="block_key")

    @app.handler(topic="events", policy=policy)
    def handle(payload: bytes, ctx: HandlerContext) -> None:
        if payload == b"k1-0":
            raise ValueError("first of k1 fails")
        seen.append(payload)

    with running(app, prepare=topic()) as r:
        for body, key in ((b"k1-0", "k1"), (b"k2-0", "k2"), (b"k1-1", "k1"), (b"k2-1", "k2")):
            r.client.produce("events", body, key=key)
        r.wait_until(lambda: len(parked(r)) == 2 and len(seen) == 2)
        head, follower = parked(r)
        assert seen == [b"k2-0", b"k2-1"]
        assert head.blocks_key and follower.blocked_by == head.id and follower.payload == b"k1-1"
        assert "key_blocked" in alerts
        r.failed.discard([head.id, follower.id])
        r.client.produce("events", b"k1-2", key="k1")
        r.wait_until(lambda: b"k1-2" in seen)  # unblocked once resolved


def test_block_never_skips_and_alerts() -> None:
    app = App("shop")
    alerts: list[str] = []
    app.alerts.target = lambda a: alerts.append(a["kind"])
    tries: list[int] = []
    policy = RetryPolicy(
        immediate=0, delayed=1, backoff=0.01, backoff_max=0.02, on_exhausted="block"
    )

    @app.handler(topic="events", policy=policy)
    def handle(payload: bytes) -> None:
        tries.append(1)
        if len(tries) < 6:
            raise ValueError("not yet")

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b"x")
        r.wait_until(lambda: len(tries) == 6)
        assert parked(r) == []
    assert alerts == ["blocked"]


def test_circuit_breaker_pauses_instead_of_parking_during_an_outage() -> None:
    app = App("shop")
    alerts: list[str] = []
    app.alerts.target = lambda a: alerts.append(a["kind"])
    down = threading.Event()
    down.set()
    seen: list[int] = []
    calls_while_down: list[int] = []
    policy = RetryPolicy(immediate=0, delayed=1, backoff=0.01, backoff_max=0.01)
    breaker = BreakerPolicy(min_failures=4, min_keys=2, pause=0.2, pause_max=0.4)

    @app.handler(topic="events", policy=policy, breaker=breaker, concurrency=4)
    def handle(payload: dict[str, int]) -> None:
        if down.is_set():
            calls_while_down.append(payload["n"])
            raise ConnectionRefusedError("payments service is down")
        seen.append(payload["n"])

    with running(app, prepare=topic(4)) as r:
        for n in range(40):
            r.client.produce("events", b'{"n": %d}' % n, key=str(n))
        r.wait_until(lambda: "breaker_open" in alerts)
        time.sleep(0.5)  # an outage lasting several breaker pauses
        calls = len(calls_while_down)
        down.clear()
        r.wait_until(lambda: len(seen) == 40, timeout=15)
        events = parked(r)
    # Without the breaker every message would be parked after 2 rounds;
    # with it only the few that failed before it opened can be.
    assert len(events) <= 4, [e.payload for e in events]
    assert calls < 40  # it stopped hammering the dead service


def test_queue_handler_lifecycle_sync_and_async() -> None:
    app = App("shop")
    seen: list[str] = []
    policy = RetryPolicy(immediate=0, delayed=1, backoff=0.01, backoff_max=0.01)

    @app.handler(queue="jobs", policy=policy, concurrency=2)
    async def job(payload: dict[str, str]) -> None:
        if payload["name"] == "bad":
            raise RuntimeError("cannot")
        seen.append(payload["name"])

    def prepare(client: Client) -> None:
        client.declare_queue("jobs")

    with running(app, prepare=prepare) as r:
        for name in ("a", "bad", "b"):
            r.client.publish("jobs", b'{"name": "%s"}' % name.encode())
        r.wait_until(lambda: len(seen) == 2 and len(parked(r)) == 1)
        (event,) = parked(r)
        assert sorted(seen) == ["a", "b"]
        assert event.source == "queue" and event.queue == "jobs" and event.message_id
        assert event.attempts == 2  # delivery_count: counted before each try
        r.wait_until(
            lambda: r.client.queue_stats("jobs").ready + r.client.queue_stats("jobs").leased == 0
        )


def test_batch_handler_gets_lists_and_a_failing_batch_is_split() -> None:
    app = App("shop")
    batches: list[list[int]] = []

    @app.handler(topic="events", batch=True, policy=FAST)
    def handle(items: list[dict[str, int]]) -> None:
        if any(i["n"] == 3 for i in items):
            raise ValueError("3 is bad")
        batches.append([i["n"] for i in items])

    with running(app, prepare=topic()) as r:
        for n in range(6):
            r.client.produce("events", b'{"n": %d}' % n)
        r.wait_until(lambda: sum(len(b) for b in batches) == 5 and len(parked(r)) == 1)
        assert [n for b in batches for n in b] == [0, 1, 2, 4, 5]
        assert parked(r)[0].payload == b'{"n": 3}'


def test_middleware_wraps_the_call_in_order() -> None:
    app = App("shop")
    trail: list[str] = []

    def outer(ctx: HandlerContext, call_next: Any) -> Any:
        trail.append("outer>")
        try:
            return call_next(ctx)
        finally:
            trail.append("<outer")

    def inner(ctx: HandlerContext, call_next: Any) -> Any:
        trail.append(f"inner:{ctx.payload!r}")
        return call_next(ctx)

    @app.handler(topic="events", middleware=[outer, inner])
    def handle(payload: str) -> None:
        trail.append("handler")

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b"hi")
        r.wait_until(lambda: "<outer" in trail)
    assert trail == ["outer>", "inner:'hi'", "handler", "<outer"]


def test_key_ordering_across_partitions_with_a_small_pool() -> None:
    """Key lanes of several partitions share the handler's threads without
    waiting on each other (two partitions, two threads: no deadlock)."""
    app = App("shop")
    seen: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()

    @app.handler(topic="events", ordering="key", concurrency=2)
    def handle(payload: dict[str, Any], ctx: HandlerContext) -> None:
        time.sleep(0.001)
        with lock:
            seen[payload["k"]].append(payload["n"])

    with running(app, prepare=topic(2)) as r:
        with r.client.producer() as producer:
            for n in range(200):
                producer.send("events", b'{"n": %d, "k": "k%d"}' % (n, n % 9), key=f"k{n % 9}")
        r.wait_until(lambda: sum(map(len, seen.values())) == 200, timeout=20)
    assert all(v == sorted(v) for v in seen.values())


def test_an_engine_error_between_fetch_and_handling_loses_nothing() -> None:
    """The fetch advanced the consumer's positions; the delivery mark write
    then failed (a database restart): the records are read again, not skipped."""
    from tidings import EngineUnavailable

    app = App("shop")
    seen: list[int] = []

    @app.handler(topic="events", max_in_flight=10)
    def handle(payload: dict[str, int]) -> None:
        seen.append(payload["n"])

    with running(app, prepare=topic()) as r:
        loop = r.runner.loops["handle"]
        real_mark = loop.store.mark
        failures = {"left": 1}

        def flaky_mark(*args: Any) -> None:
            if failures["left"] and seen:
                failures["left"] -= 1
                raise EngineUnavailable("database restarting")
            real_mark(*args)

        loop.store.mark = flaky_mark  # type: ignore[method-assign]
        for n in range(50):
            r.client.produce("events", b'{"n": %d}' % n)
        r.wait_until(lambda: len(seen) >= 50 and failures["left"] == 0, timeout=15)
    assert sorted(set(seen)) == list(range(50))


def test_membership_stays_alive_through_a_pause_longer_than_the_session() -> None:
    from tidings import GroupConfig

    app = App("shop")
    tries: list[float] = []
    session = GroupConfig(session_timeout_s=0.5, heartbeat_interval_s=0.05)
    policy = RetryPolicy(immediate=0, delayed=3, backoff=1.2, backoff_max=1.2)

    @app.handler(topic="events", policy=policy, group_config=session)
    def handle(payload: bytes) -> Retry | None:
        tries.append(time.monotonic())
        return Retry(1.2) if len(tries) == 1 else None  # one pause of 2.4 sessions

    with running(app, prepare=topic()) as r:
        r.client.produce("events", b"x")
        r.wait_until(lambda: len(tries) == 1)
        members = r.client.describe_group("shop.handle").members
        r.wait_until(lambda: len(tries) == 2)
        assert tries[1] - tries[0] >= 1.2
        assert r.client.describe_group("shop.handle").members == members  # never fenced
        assert parked(r) == []


def test_key_ordering_does_not_handle_other_keys_twice_after_a_retry() -> None:
    """Records of other keys handled while an earlier key waited are not
    handled again when the partition is re-read from the waiting record."""
    app = App("shop")
    calls: list[bytes] = []
    waited: list[bool] = []

    @app.handler(topic="events", ordering="key", concurrency=2)
    def handle(payload: bytes) -> Retry | None:
        if payload == b"a0" and not waited:
            waited.append(True)
            return Retry(0.05)
        calls.append(payload)
        return None

    with running(app, prepare=topic()) as r:
        with r.client.producer() as producer:
            producer.send("events", b"a0", key="a")
            for i in range(5):
                producer.send("events", b"b%d" % i, key="b")
            producer.send("events", b"a1", key="a")
        r.wait_until(lambda: b"a1" in calls)
        time.sleep(0.2)  # let any duplicate show up
    assert sorted(calls) == sorted([b"a0", b"a1", *(b"b%d" % i for i in range(5))])
    assert calls.index(b"a0") < calls.index(b"a1")


def test_async_batch_topic_handler_and_sync_batch_queue_handler() -> None:
    app = App("shop")
    topic_batches: list[list[str]] = []
    queue_items: list[bytes] = []

    @app.handler(topic="events", batch=True, policy=FAST)
    async def on_events(items: list[str]) -> None:
        if "bad" in items:
            raise ValueError("a bad item in the batch")
        topic_batches.append(items)

    @app.handler(queue="jobs", batch=True, policy=FAST)
    def on_jobs(items: list[bytes]) -> None:
        queue_items.extend(items)

    def prepare(client: Client) -> None:
        client.create_topic("events")
        client.declare_queue("jobs")

    with running(app, prepare=prepare) as r:
        with r.client.producer() as producer:
            for body in (b"a", b"bad", b"b"):
                producer.send("events", body)
        r.client.publish_batch("jobs", [b"j1", b"j2", b"j3"])
        r.wait_until(lambda: len(queue_items) == 3 and len(r.failed.find()) == 1)
        r.wait_until(lambda: sum(map(len, topic_batches)) == 2)
        assert [x for b in topic_batches for x in b] == ["a", "b"]
        assert sorted(queue_items) == [b"j1", b"j2", b"j3"]
        assert r.failed.find()[0].payload == b"bad"


def test_with_key_ordering_only_the_failing_key_waits() -> None:
    """R2 with ordering="key": the failing key waits out its backoff while
    the other keys of the same partition keep flowing, new records too."""
    app = App("shop")
    events: list[tuple[float, str]] = []
    policy = RetryPolicy(immediate=0, delayed=3, backoff=0.6, backoff_max=0.6)
    failures = {"left": 1}

    @app.handler(topic="events", policy=policy, ordering="key")
    def handle(payload: str, ctx: HandlerContext) -> None:
        if payload == "slow-0" and failures["left"]:
            failures["left"] -= 1
            raise TimeoutError("slow downstream")
        events.append((time.monotonic(), payload))

    with running(app, prepare=topic()) as r:
        r.client.produce("events", "slow-0", key="slow")
        r.client.produce("events", "slow-1", key="slow")
        r.wait_until(lambda: failures["left"] == 0)
        failed_at = time.monotonic()
        for i in range(5):
            r.client.produce("events", f"fast-{i}", key="fast")
        r.wait_until(lambda: len(events) == 7, timeout=20)
        committed = r.client.engine.groups.committed
        r.wait_until(lambda: list(committed("shop.handle").values()) == [7])
    names = [name for _, name in events]
    assert sorted(names) == sorted(["slow-0", "slow-1", *(f"fast-{i}" for i in range(5))])
    assert names.index("slow-0") < names.index("slow-1")
    # the other key did not wait for the failing one's backoff
    fast_done = max(t for t, n in events if n.startswith("fast"))
    slow_done = min(t for t, n in events if n.startswith("slow"))
    assert fast_done < slow_done and fast_done - failed_at < 0.5
