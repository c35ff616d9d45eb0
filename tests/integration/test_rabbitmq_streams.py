"""What only the RabbitMQ stream log promises or refuses: the group
compare-and-set under two processes, offsets per group, retention as stream
arguments applied per segment, and bad input (no stream plugin, records over
the frame size, nothing half-declared). Every stream created is deleted."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tidings import (
    Client,
    EngineUnavailable,
    PartitionNotFound,
    RecordTooLarge,
    TopicNotFound,
    TopicPartition,
)
from tidings.config import TopicConfig
from tidings.engines.rabbitmq import catalog
from tidings.testing import read_all
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
pytestmark = pytest.mark.engine("rabbitmq")

_BUMP = """
import sys
from tidings import Client
url, group, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def bump(state, counts):
    state.generation += 1
with Client(url) as client:
    for _ in range(n):
        client.engine.log.group_transition(group, bump)
"""


@pytest.fixture
def client() -> Iterator[Client]:
    reachable = service_reachable("127.0.0.1", 5672) and service_reachable("127.0.0.1", 5552)
    require_engine("rabbitmq", reachable, "RabbitMQ with the stream plugin (5672, 5552)")
    with Client(AMQP) as client:
        yield client


@pytest.fixture
def name(client: Client) -> Iterator[str]:
    """A unique stem; topics and groups carrying it are deleted afterwards."""
    stem = f"rs-{uuid.uuid4().hex[:10]}"
    yield stem
    for config in client.topics():
        if stem in config.name:
            client.delete_topic(config.name)
    for group in client.groups():
        if stem in group:
            client.engine.log.delete_group(group)


def test_group_cas_has_no_lost_update_across_two_processes(client: Client, name: str) -> None:
    """Groups: two processes each apply 25 transitions to one group at the
    same time; every one of the 50 lands exactly once (the stream register's
    compare-and-set lets one writer per version win; losers retry)."""
    group = f"g-{name}"
    procs = [subprocess.Popen([sys.executable, "-c", _BUMP, AMQP, group, "25"]) for _ in range(2)]
    for proc in procs:
        assert proc.wait(120) == 0
    state = client.engine.log.load_group(group)
    assert state is not None and state.generation == 50


def test_offsets_are_kept_per_group_and_fenced(client: Client, name: str) -> None:
    """L4/L5: two groups commit different offsets on one topic and each reads
    back its own; a commit from outside the group while a member is live is
    fenced and stores nothing; deleting the topic forgets both groups' offsets."""
    from tidings import FencedError
    from tidings.groups.coordinator import Member

    client.create_topic(name, partitions=2)
    tp0, tp1 = TopicPartition(name, 0), TopicPartition(name, 1)
    log = client.engine.log
    log.commit(f"a-{name}", None, {tp0: 3}, time.time())
    log.commit(f"b-{name}", None, {tp0: 7, tp1: 1}, time.time())
    assert log.committed(f"a-{name}") == {tp0: 3}
    assert log.committed(f"b-{name}") == {tp0: 7, tp1: 1}

    def join(state, counts):  # type: ignore[no-untyped-def]
        return state.join(Member("m1", (name,), 30.0, time.time()), counts, time.time())

    view = log.group_transition(f"a-{name}", join)
    assert view.owned == {tp0, tp1}
    with pytest.raises(FencedError):
        log.commit(f"a-{name}", None, {tp0: 9}, time.time())
    log.commit(f"a-{name}", "m1", {tp0: 4}, time.time())
    assert log.committed(f"a-{name}") == {tp0: 4}
    assert {f"a-{name}", f"b-{name}"} <= set(client.groups())
    client.delete_topic(name)
    assert log.committed(f"a-{name}") == log.committed(f"b-{name}") == {}


def test_retention_arguments_drop_whole_old_segments(client: Client, name: str) -> None:
    """L6 on streams: retention is the streams' max-age / max-length-bytes,
    applied by RabbitMQ per segment (a quarter of the size limit here) when
    a segment fills; what stays keeps its offsets, and a read below the
    first offset starts at it."""
    assert catalog.arguments(TopicConfig("t", retention_s=7200, retention_bytes=40_000)) == {
        "max-age": "7200s",
        "max-length-bytes": 40_000,
        "stream-max-segment-size-bytes": 10_000,
    }
    client.create_topic(name, retention_bytes=40_000, retention="1h")
    producer = client.producer()
    for i in range(40):
        producer.send_batch(name, [bytes([65 + i % 26]) * 500] * 10)
    deadline = time.monotonic() + 10
    while client.partitions(name)[0].first_offset == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    info = client.partitions(name)[0]
    assert 0 < info.first_offset < 400 and info.next_offset == 400
    kept = read_all(client, name, 0)
    assert [r.offset for r in kept] == list(range(info.first_offset, 400))
    assert all(r.value == bytes([65 + (r.offset // 10) % 26]) * 500 for r in kept)
    assert sum(len(r.value or b"") for r in kept) <= 40_000 * 1.5


def test_closed_stream_port_says_to_enable_the_plugin(client: Client, name: str) -> None:
    """Bad input: a server whose stream port is closed (no rabbitmq_stream
    plugin) raises EngineUnavailable naming the command that enables it;
    the queue side of the same engine keeps working."""
    with Client(AMQP + "?stream_port=1") as other:
        with pytest.raises(EngineUnavailable, match="rabbitmq-plugins enable rabbitmq_stream"):
            other.create_topic(name)
        assert other.engine.queues is not None
    with pytest.raises(TopicNotFound):
        client.topic(name)


def test_record_over_the_frame_size_is_refused_and_nothing_stored(
    client: Client, name: str
) -> None:
    """Bad input: a record that cannot fit one stream frame (1 MiB) raises
    RecordTooLarge even where max_record_bytes allows it, and nothing of
    the batch is stored in any partition."""
    client.create_topic(name, partitions=2, max_record_bytes=4 << 20)
    producer = client.producer()
    with pytest.raises(RecordTooLarge, match="frame"):
        producer.send_batch(name, [b"small", b"x" * (2 << 20)], keys=["a", "b"])
    assert [i.next_offset for i in client.partitions(name)] == [0, 0]
    producer.send_batch(name, [b"y" * 500_000], partition=1)
    assert [len(r.value or b"") for r in read_all(client, name, 1)] == [500_000]


def test_failed_create_leaves_nothing_half_declared(
    client: Client, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad input: when creating a partition's stream fails part-way, the
    topic is not listed and the streams already created are deleted."""
    link = client.engine.log._link  # type: ignore[attr-defined]
    real = link.create

    async def fail_third(stream: str, args: dict[str, object]) -> None:
        if stream.endswith(".p2"):
            raise EngineUnavailable("injected: the broker went away")
        await real(stream, args)

    monkeypatch.setattr(link, "create", fail_third)
    with pytest.raises(EngineUnavailable, match="injected"):
        client.create_topic(name, partitions=4)
    monkeypatch.setattr(link, "create", real)
    assert name not in [t.name for t in client.topics()]
    portal = client.engine._portal  # type: ignore[attr-defined]
    for p in range(4):
        stream = catalog.partition_stream(name, p)
        assert not portal.call(link.exists(stream), 10), stream
    client.create_topic(name, partitions=4)
    assert [i.next_offset for i in client.partitions(name)] == [0] * 4


def test_push_cursor_reads_seeks_pauses_and_waits(client: Client, name: str) -> None:
    """Cursor: assigned partitions are pushed from their offsets, in offset
    order per partition; seek re-reads from an offset; a paused partition
    yields nothing until resumed; an empty fetch waits for a new record."""
    client.create_topic(name, partitions=2)
    producer = client.producer()
    producer.send_batch(name, [b"a%d" % i for i in range(30)], partition=0)
    producer.send_batch(name, [b"b%d" % i for i in range(5)], partition=1)
    tp0, tp1 = TopicPartition(name, 0), TopicPartition(name, 1)
    cursor = client.engine.open_cursor([name])  # type: ignore[attr-defined]
    try:
        cursor.assign({tp0: 10, tp1: 0})
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < 25 and time.monotonic() < deadline:
            got += cursor.fetch(7, 1.0)
        assert [r.offset for r in got if r.partition == 0] == list(range(10, 30))
        assert [r.value for r in got if r.partition == 1] == [b"b%d" % i for i in range(5)]
        assert cursor.positions() == {tp0: 30, tp1: 5}
        cursor.seek(tp0, 28)
        cursor.pause(frozenset({tp1}))
        cursor.assign({tp0: 28, tp1: 5})  # kept partitions keep their place; tp1 stays paused
        client.produce(name, b"b5", partition=1)
        assert [(r.partition, r.offset) for r in cursor.fetch(100, 1.0)] == [(0, 28), (0, 29)]
        assert cursor.fetch(100, 0.2) == []
        cursor.resume(frozenset({tp1}))
        assert [(r.partition, r.offset) for r in cursor.fetch(100, 5.0)] == [(1, 5)]
        started = time.monotonic()
        assert cursor.fetch(100, 0.3) == []
        assert time.monotonic() - started >= 0.29
    finally:
        cursor.close()


_CREATE = """
import sys
from tidings import Client, AlreadyExists
url, topic = sys.argv[1], sys.argv[2]
with Client(url) as client:
    try:
        client.create_topic(topic, partitions=3)
        print("created")
    except AlreadyExists:
        print("exists")
"""


def test_two_processes_creating_one_topic_one_wins(client: Client, name: str) -> None:
    """Topics across processes: four processes create the same topic at
    once; exactly one succeeds, the others get AlreadyExists, and the topic
    is whole (every partition writable, listed once)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATE, AMQP, name], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = sorted(proc.communicate(timeout=120)[0].strip() for proc in procs)
    assert outcomes == ["created", "exists", "exists", "exists"]
    assert [t.name for t in client.topics()].count(name) == 1
    for p in range(3):
        client.produce(name, b"x", partition=p)
    assert [i.next_offset for i in client.partitions(name)] == [1, 1, 1]


def test_cursor_is_woken_by_a_push(client: Client, name: str) -> None:
    """Cursor: a record produced while a fetch waits is pushed by RabbitMQ
    and returned well before the fetch's timeout."""
    import threading

    client.create_topic(name)
    tp = TopicPartition(name, 0)
    cursor = client.engine.open_cursor([name])  # type: ignore[attr-defined]
    try:
        cursor.assign({tp: 0})
        assert cursor.fetch(10, 0.1) == []
        timer = threading.Timer(0.3, lambda: client.produce(name, b"ping"))
        timer.start()
        started = time.monotonic()
        got = cursor.fetch(10, 10.0)
        waited = time.monotonic() - started
        timer.join()
        assert [r.value for r in got] == [b"ping"]
        assert waited < 1.0, f"woken after {waited:.2f}s"
        with pytest.raises(PartitionNotFound):
            cursor.seek(TopicPartition(name, 3), 0)
    finally:
        cursor.close()


def test_dropped_stream_connection_is_reopened(client: Client, name: str) -> None:
    """A dropped stream connection is reopened by the next call: appends,
    reads and a push cursor go on (the cursor subscribes again from its
    position: nothing skipped, nothing repeated)."""
    client.create_topic(name)
    tp = TopicPartition(name, 0)
    client.producer().send_batch(name, [b"a", b"b"])
    engine = client.engine
    cursor = engine.open_cursor([name])  # type: ignore[attr-defined]
    try:
        cursor.assign({tp: 0})
        assert [r.value for r in cursor.fetch(1, 5.0)] == [b"a"]
        link = engine._streams  # type: ignore[attr-defined]
        engine._portal.call(link._client._conn.close(), 5)  # type: ignore[attr-defined]
        time.sleep(0.2)
        client.produce(name, b"c")
        assert [r.value for r in read_all(client, name, 0)] == [b"a", b"b", b"c"]
        got: list[bytes | None] = []
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            got += [r.value for r in cursor.fetch(10, 0.5)]
        assert got == [b"b", b"c"]
    finally:
        cursor.close()


def test_messages_of_other_stream_clients(client: Client, name: str) -> None:
    """Records are AMQP 1.0 messages: one another stream client wrote (a
    body, no tidings annotations) reads as a keyless record stamped with
    its chunk's broker time; bytes that are no AMQP message raise
    CorruptDataError naming the offset, and reading past them works."""
    from rstream import AMQPMessage

    from tidings import CorruptDataError

    client.create_topic(name)
    client.produce(name, b"ours", key="k")
    link, portal = client.engine._streams, client.engine._portal  # type: ignore[attr-defined]
    stream = catalog.partition_stream(name, 0)
    before = int(time.time() * 1000)
    portal.call(link.publish(stream, [bytes(AMQPMessage(body=b"theirs"))]), 10)
    portal.call(link.publish(stream, [b"\xffnot amqp"]), 10)
    client.produce(name, b"after")
    log = client.engine.log
    ours, theirs = log.read(name, 0, 0, 2)[:2]
    assert (ours.key, ours.value, theirs.key, theirs.value) == (b"k", b"ours", None, b"theirs")
    assert before - 1000 <= theirs.timestamp <= time.time() * 1000 + 1000
    with pytest.raises(CorruptDataError, match=r"partition 0 offset 2"):
        log.read(name, 0, 2, 10)
    assert [r.value for r in log.read(name, 0, 3, 10)] == [b"after"]


def test_kept_publishers_survive_a_topic_deleted_and_created_elsewhere(
    client: Client, name: str
) -> None:
    """Publishers stay declared between appends (no declare and delete per
    call); when another client deletes the topic and creates it again, the
    kept publisher is gone on the server: the next append declares a new
    one on the new stream, and nothing lands twice or on the old stream."""
    client.create_topic(name)
    client.producer().send_batch(name, [b"a", b"b"])
    link = client.engine._streams  # type: ignore[attr-defined]
    assert (catalog.partition_stream(name, 0), None) in link._kept
    with Client(AMQP) as other:
        other.delete_topic(name)
        other.create_topic(name)
    client.produce(name, b"c")
    assert [r.value for r in read_all(client, name, 0)] == [b"c"]


def test_commit_after_the_group_was_deleted_elsewhere(client: Client, name: str) -> None:
    """Commits skip the catalog for a group this process saw listed and
    write on the version it knows; when another client deleted the group
    meanwhile, the commit lists it again and stores the offsets on the new
    register, as a first commit does, and versions stay dense (the other
    client reads what was committed)."""
    client.create_topic(name)
    tp = TopicPartition(name, 0)
    group = f"g-{name}"
    log = client.engine.log
    for offset in (1, 2, 3):
        log.commit(group, None, {tp: offset}, time.time())
    with Client(AMQP) as other:
        other.engine.log.delete_group(group)
        assert group not in other.groups()
        log.commit(group, None, {tp: 9}, time.time())
        assert other.engine.log.committed(group) == {tp: 9}
        other.engine.log.commit(group, None, {tp: 10}, time.time())  # a version of its own
        log.commit(group, None, {tp: 11}, time.time())  # on a stale version: loses, retries
        assert other.engine.log.committed(group) == {tp: 11}
    assert group in client.groups()
