"""The producer's buffer is bounded in bytes, with backpressure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tidings import (
    AsyncClient,
    BufferFull,
    Client,
    ConfigurationError,
    Producer,
    ProducerConfig,
)


@pytest.fixture
def gated() -> Iterator[tuple[Client, threading.Event]]:
    """A memory client whose appends wait until the event is set."""
    client = Client("memory://")
    gate = threading.Event()
    real = client.engine.log.append

    def append(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    client.engine.log.append = append  # type: ignore[method-assign]
    try:
        yield client, gate
    finally:
        gate.set()
        client.close()


def test_send_blocks_then_raises_buffer_full(gated: tuple[Client, threading.Event]) -> None:
    """A send that does not fit waits max_block_s for room, then raises
    BufferFull without buffering the record."""
    client, gate = gated
    client.create_topic("buf")
    producer = client.producer(buffer_bytes=1000, max_block_s=0.3)
    acks = [producer.send("buf", b"x" * 100) for _ in range(10)]  # exactly full
    start = time.monotonic()
    with pytest.raises(BufferFull, match=r"max_block_s=0\.3"):
        producer.send("buf", b"y" * 100)
    assert 0.25 <= time.monotonic() - start < 2
    gate.set()
    assert [a.result(10).offset for a in acks] == list(range(10))
    assert producer.send("buf", b"z" * 100).result(10).offset == 10  # room again, nothing of y
    producer.close()


def test_a_blocked_send_goes_through_when_room_frees(
    gated: tuple[Client, threading.Event],
) -> None:
    """Backpressure, not failure: a send waiting for room completes as soon
    as earlier records are stored."""
    client, gate = gated
    client.create_topic("buf2")
    producer = client.producer(buffer_bytes=500, max_block_s=10)
    for _ in range(5):
        producer.send("buf2", b"x" * 100)
    threading.Timer(0.2, gate.set).start()
    start = time.monotonic()
    ack = producer.send("buf2", b"late" * 25)
    assert 0.15 <= time.monotonic() - start < 5
    assert ack.result(10).offset == 5
    producer.close()


def test_one_record_larger_than_the_buffer_still_goes_alone() -> None:
    """A record bigger than buffer_bytes is not refused while the buffer is empty."""
    with Client("memory://") as client:
        client.create_topic("big")
        producer = client.producer(buffer_bytes=10)
        assert producer.send("big", b"x" * 100).result(10).offset == 0
        producer.close()


async def test_async_send_raises_at_once_instead_of_blocking_the_loop() -> None:
    """AsyncProducer.send never waits on the loop: a full buffer raises BufferFull at once."""
    async with AsyncClient("memory://") as client:
        await client.create_topic("abuf")
        producer = client.producer(buffer_bytes=300, max_block_s=30)
        futures = []
        with pytest.raises(BufferFull):  # waiting for the topic's settings counts too
            for _ in range(4):
                futures.append(producer.send("abuf", b"x" * 100))
        assert len(futures) == 3
        await producer.flush()
        futures += [producer.send("abuf", b"x" * 100) for _ in range(3)]
        start = time.monotonic()
        with pytest.raises(BufferFull):
            for _ in range(1000):  # until the sender has not stored them yet
                futures.append(producer.send("abuf", b"x" * 100))
        assert time.monotonic() - start < 1
        await producer.aclose()
        offsets = [(await f).offset for f in futures]
        assert offsets == list(range(len(offsets)))


def test_buffer_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="buffer_bytes"):
        ProducerConfig(buffer_bytes=0)
    with pytest.raises(ConfigurationError, match="max_block"):
        ProducerConfig(max_block_s=-1)


def test_room_is_given_back_before_the_acks_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever waited for an ack (or flush) finds the stored records' room
    already free: a send right after flush never meets a full buffer (a
    slow release widens the window the old order left open)."""
    release = Producer._release

    def slow_release(self: Producer, flights: Any) -> None:
        time.sleep(0.01)
        release(self, flights)

    monkeypatch.setattr(Producer, "_release", slow_release)
    with Client("memory://") as client:
        client.create_topic("room")
        producer = client.producer(buffer_bytes=300, max_block_s=0)
        for round_ in range(20):
            acks = [producer.send("room", b"x" * 100) for _ in range(3)]
            acks[-1].result()
            assert producer.held() == 0, f"round {round_}: {producer.held()} bytes still held"
        producer.close()
