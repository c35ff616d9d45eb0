"""Background maintenance applies retention and compaction without being asked (L6)."""

from __future__ import annotations

import time

import pytest

from tidings import Client


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
