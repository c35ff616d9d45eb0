"""PollingCursor, the Cursor of memory and SQL engines: positions, seek,
pause, fetch timeouts and wake-ups, on real engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import Client, TopicPartition
from tidings.engines.cursor import PollingCursor, log_channels
from tidings.errors import ConfigurationError
from tidings.ports.cursor import Cursor
from tidings.ports.log import LogEngine

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture(params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/bus.db"
    with Client(url) as c:
        c.create_topic("t", partitions=2)
        yield c


@pytest.fixture
def cursor(client: Client) -> Iterator[Cursor]:
    cur = client.engine.open_cursor(["t"])
    yield cur
    cur.close()


def _fill(client: Client, partition: int, n: int, tag: str = "v") -> None:
    client.producer().send_batch("t", [f"{tag}{i}".encode() for i in range(n)], partition=partition)


def _where(records: list[Any]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_fetch_reads_every_assigned_partition_from_its_position(
    client: Client, cursor: Cursor
) -> None:
    _fill(client, 0, 5)
    _fill(client, 1, 3)
    cursor.assign({A: 2, B: 0})
    got = cursor.fetch(100, 0)
    assert sorted(_where(got)) == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2)]
    assert cursor.positions() == {A: 5, B: 3}  # moved past what was returned
    assert cursor.fetch(100, 0) == []


def test_max_records_is_a_limit_and_partitions_take_turns(client: Client, cursor: Cursor) -> None:
    _fill(client, 0, 50)
    _fill(client, 1, 50)
    cursor.assign({A: 0, B: 0})
    first = cursor.fetch(10, 0)
    second = cursor.fetch(10, 0)
    assert len(first) == len(second) == 10
    # one busy partition cannot starve the other: successive fetches start elsewhere
    assert {first[0].partition, second[0].partition} == {0, 1}
    positions = cursor.positions()
    for r in first + second:  # in offset order within each partition, no gaps
        assert r.offset < positions[TopicPartition(r.topic, r.partition)]
    assert sum(positions.values()) == 20


def test_seek_goes_back_and_assign_replaces_the_partitions(client: Client, cursor: Cursor) -> None:
    _fill(client, 0, 5)
    _fill(client, 1, 5)
    cursor.assign({A: 0})
    assert _where(cursor.fetch(100, 0)) == [(0, o) for o in range(5)]
    cursor.seek(A, 3)
    assert _where(cursor.fetch(100, 0)) == [(0, 3), (0, 4)]
    cursor.assign({B: 4})
    assert _where(cursor.fetch(100, 0)) == [(1, 4)]
    assert cursor.positions() == {B: 5}
    with pytest.raises(ConfigurationError):
        cursor.seek(A, 0)  # not assigned any more


def test_paused_partitions_are_not_read_until_resumed(client: Client, cursor: Cursor) -> None:
    _fill(client, 0, 3)
    _fill(client, 1, 3)
    cursor.assign({A: 0, B: 0})
    cursor.pause(frozenset({A}))
    assert {r.partition for r in cursor.fetch(100, 0)} == {1}
    cursor.assign({A: 0, B: 3})  # a paused partition stays paused across assign
    assert cursor.fetch(100, 0.05) == []
    assert cursor.positions() == {A: 0, B: 3}  # positions stay while paused
    cursor.resume(frozenset({A}))
    assert _where(cursor.fetch(100, 0)) == [(0, 0), (0, 1), (0, 2)]


def test_fetch_waits_out_its_timeout_when_nothing_comes(cursor: Cursor) -> None:
    cursor.assign({A: 0, B: 0})
    start = time.monotonic()
    assert cursor.fetch(100, 0.3) == []
    assert 0.25 <= time.monotonic() - start < 2.0


def test_an_append_while_waiting_ends_the_wait(client: Client, cursor: Cursor) -> None:
    cursor.assign({A: 0, B: 0})
    timer = threading.Timer(0.2, _fill, args=(client, 1, 2))
    timer.start()
    start = time.monotonic()
    try:
        got = cursor.fetch(100, 10)
    finally:
        timer.join()
    assert _where(got) == [(1, 0), (1, 1)]
    assert time.monotonic() - start < 5  # woken, not timed out


class _AppendAfterEmptyRead:
    """A log whose first empty read is followed at once by an append: the
    worst moment for a wake-up, between the read and the wait."""

    def __init__(self, client: Client) -> None:
        self.client, self.inner, self.fired = client, client.engine.log, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Any]:
        got = self.inner.read(topic, partition, offset, max_records)
        if not got and not self.fired:
            self.fired = True
            _fill(self.client, partition, 1)  # lands just after the read found nothing
        return got


def test_no_lost_wake_up_between_the_read_and_the_wait(client: Client) -> None:
    """The waiter is armed before the read, so an append that lands after
    the read found nothing (and before the wait) ends the wait at once."""
    log: LogEngine = _AppendAfterEmptyRead(client)  # type: ignore[assignment]
    engine = client.engine
    cursor = PollingCursor(log, lambda: engine.waiter(log_channels(["t"])))
    cursor.assign({A: 0})
    start = time.monotonic()
    try:
        got = cursor.fetch(100, 10)
    finally:
        cursor.close()
    assert _where(got) == [(0, 0)]
    assert time.monotonic() - start < 5


def test_close_from_another_thread_while_fetching(client: Client) -> None:
    cursor = client.engine.open_cursor(["t"])
    cursor.assign({A: 0})
    closer = threading.Timer(0.1, cursor.close)
    closer.start()
    start = time.monotonic()
    assert cursor.fetch(100, 0.5) == []
    closer.join()
    assert time.monotonic() - start < 5
    assert cursor.fetch(100, 10) == []  # closed: returns at once
