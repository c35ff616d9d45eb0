"""Background maintenance applies retention and compaction without being asked (L6)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings import Client, EngineUnavailable
from tidings.backoff import full_jitter


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_background_round_applies_size_retention(scheme: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """L6: with maintenance_interval=0.2s, a topic over its byte limit shrinks by itself."""
    url = (
        "memory://?maintenance_interval=0.2s"
        if scheme == "memory"
        else f"sqlite:///{tmp_path}/m.db?maintenance_interval=0.2s"
    )
    client = Client(url)
    client.create_topic("m-bytes", retention_bytes=2000)
    producer = client.producer()
    for _ in range(10):
        producer.send_batch("m-bytes", [b"x" * 100] * 5)  # 10 batches of 500 bytes
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (info,) = client.partitions("m-bytes")
        if info.first_offset > 0:
            break
        time.sleep(0.05)
    (info,) = client.partitions("m-bytes")
    assert info.first_offset > 0 and info.next_offset == 50
    assert info.size <= 2000
    client.close()


def test_maintenance_interval_is_validated() -> None:
    """A bad option names itself."""
    with pytest.raises(ValueError, match="maintenance_interval"):
        Client("memory://?maintenance_interval=soon")


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_background_round_dead_letters_expired_messages(scheme: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Q5: a message whose TTL passes while nobody reads the queue is moved to
    the dead-letter queue by maintenance, with reason expired."""
    url = (
        "memory://?maintenance_interval=0.2s"
        if scheme == "memory"
        else f"sqlite:///{tmp_path}/ttl.db?maintenance_interval=0.2s"
    )
    client = Client(url)
    client.declare_queue("ttl", ttl="0.1s", dead_letter="ttl.dlq")
    client.publish("ttl", b"stale")
    deadline = time.monotonic() + 10
    while client.queue_stats("ttl").dead_lettered == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    (dead,) = client.dead_letters("ttl")
    assert dead.headers["x-dead-letter-reason"] == "expired"
    client.close()


def _url(scheme: str, tmp_path: Path, name: str) -> str:
    if scheme == "memory":
        return "memory://?maintenance_interval=0.1s"
    return f"sqlite:///{tmp_path}/{name}.db?maintenance_interval=0.1s"


def _wait(condition: Callable[[], bool], patience: float = 10.0) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {patience}s")
        time.sleep(0.02)


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_maintenance_outlives_an_arbitrary_error(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untranslated error (here a RuntimeError, as a driver error from
    VACUUM would be) fails one round: it is logged and reported by
    maintenance_status(), and the next rounds still apply retention."""
    client = Client(_url(scheme, tmp_path, "err"))
    log = client.engine.log
    real = log.enforce_retention
    failures = []

    def flaky(topic: str, now_ms: int) -> int:
        if len(failures) < 2:
            failures.append(now_ms)
            raise RuntimeError("injected: not a TidingsError")
        return real(topic, now_ms)

    monkeypatch.setattr(log, "enforce_retention", flaky)
    client.create_topic("err-bytes", retention_bytes=1000)
    for _ in range(5):
        client.producer().send_batch("err-bytes", [b"x" * 100] * 5)
    _wait(lambda: client.partitions("err-bytes")[0].first_offset > 0)
    # Retention lands mid-round; the round's outcome is recorded when it ends.
    _wait(lambda: client.maintenance_status().last_success is not None)
    status = client.maintenance_status()
    assert len(failures) == 2 and status.running
    assert status.last_error is not None and "RuntimeError: injected" in status.last_error
    assert "retention of 'err-bytes'" in status.last_error
    assert status.last_error_at is not None and status.last_success is not None
    _wait(lambda: client.maintenance_status().failures == 0)
    assert client.maintenance_status().last_success > status.last_error_at  # type: ignore[operator]
    client.close()
    assert client.maintenance_status().running is False


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_one_failing_step_does_not_stop_the_others(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A topic whose retention always fails (sorted first) does not keep
    retention from the other topics, nor the TTL sweep; every round
    reports the failure."""
    client = Client(_url(scheme, tmp_path, "steps"))
    log = client.engine.log
    real = log.enforce_retention

    def broken_for_a(topic: str, now_ms: int) -> int:
        if topic == "a-broken":
            raise EngineUnavailable("injected")
        return real(topic, now_ms)

    monkeypatch.setattr(log, "enforce_retention", broken_for_a)
    for name in ("a-broken", "b-fine"):
        client.create_topic(name, retention_bytes=1000)
        for _ in range(5):
            client.producer().send_batch(name, [b"x" * 100] * 5)
    client.declare_queue("steps-ttl", ttl="0.1s")
    client.publish("steps-ttl", b"stale")
    _wait(lambda: client.partitions("b-fine")[0].first_offset > 0)
    _wait(lambda: client.queue_stats("steps-ttl").dead_lettered == 1)
    _wait(lambda: client.maintenance_status().failures >= 1)  # recorded when the round ends
    status = client.maintenance_status()
    assert status.failures >= 1 and status.last_success is None
    assert "retention of 'a-broken'" in (status.last_error or "")
    assert client.partitions("a-broken")[0].first_offset == 0
    client.close()


def test_backoff_is_full_jitter_under_a_growing_cap() -> None:
    """After n failed rounds the next try waits a uniform time in
    [0, min(cap, interval * 2**n)]: spread out, growing, bounded."""
    random.seed(7)
    for failures, bound in [(1, 2.0), (3, 8.0), (10, 50.0), (1000, 50.0)]:
        delays = [full_jitter(failures, 1.0, 50.0) for _ in range(2000)]
        assert 0 <= min(delays) < bound * 0.05 and bound * 0.95 < max(delays) <= bound


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_ttl_sweep_moves_only_what_expired(scheme: str, tmp_path: Path) -> None:
    """Q5: the paged TTL sweep dead-letters every expired message (more
    than a page of them) and none of the fresher ones published after."""
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/sweep.db"
    with Client(url) as client:
        client.declare_queue("sweep", ttl="0.3s", max_length=10_000)  # rows, not batch rows
        client.publish_batch("sweep", [b"old"] * 1200)
        time.sleep(0.35)
        client.publish_batch("sweep", [b"new"] * 700)
        assert client.engine.queues.sweep_expired(int(time.time() * 1000)) == 1200
        stats = client.queue_stats("sweep")
        assert (stats.ready, stats.dead_lettered) == (700, 1200)
        assert client.queue_stats("sweep.dlq").ready == 1200
        assert {d.body for d in client.get("sweep", 1000)} == {b"new"}
