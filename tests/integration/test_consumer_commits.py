"""What a consumer commits: only records the caller has had (L5, at-least-once).

Run on every engine: memory, SQLite and PostgreSQL (a schema per test)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import Client, TopicPartition
from tidings.testing import FAST_GROUP, require_engine, service_reachable

PG = "postgresql://127.0.0.1:5432/test"


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.engine("memory")),
        pytest.param("sqlite", marks=pytest.mark.engine("sqlite")),
        pytest.param("postgresql", marks=pytest.mark.engine("postgresql")),
    ]
)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'commits.db'}"
    else:
        require_engine("postgresql", service_reachable("127.0.0.1", 5432))
        url = f"{PG}?schema={schema}"
    c = Client(url)
    try:
        yield c
    finally:
        c.close()
        if request.param == "postgresql":
            import psycopg

            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _topic(client: Client, n: int = 500) -> str:
    topic = f"commits-{uuid.uuid4().hex[:8]}"
    client.create_topic(topic)
    client.producer().send_batch(topic, [b"%d" % i for i in range(n)])
    return topic


def _committed(client: Client, group: str, topic: str) -> int | None:
    return client.engine.groups.committed(group).get(TopicPartition(topic, 0))


def test_leaving_a_for_loop_commits_only_what_was_yielded(client: Client) -> None:
    """L5: break after 3 of 500 fetched records, close: the group commits 3."""
    topic = _topic(client)
    c = client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP)
    seen = []
    for record in c:
        seen.append(record.offset)
        if len(seen) == 3:
            break
    c.close()
    assert seen == [0, 1, 2]
    assert _committed(client, "g", topic) == 3
    with client.consumer(topic, "g", group_config=FAST_GROUP) as again:
        assert again.poll(timeout=5, max_records=1)[0].offset == 3


def test_an_exception_in_the_loop_does_not_commit_the_record_it_hit(client: Client) -> None:
    """L5: a with-block left by an exception commits the records before the
    one being processed; that one is redelivered."""
    topic = _topic(client, 10)

    def boom() -> None:
        with client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP) as c:
            for record in c:
                if record.offset == 4:
                    raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        boom()
    assert _committed(client, "g", topic) == 4


def test_poll_counts_the_last_batch_on_the_next_poll_or_close(client: Client) -> None:
    """L5: auto-commit commits a poll's records once the caller polls again;
    a with-block left by an exception does not commit the last poll's."""
    topic = _topic(client, 10)
    with (
        pytest.raises(RuntimeError),
        client.consumer(
            topic, "g", start="beginning", auto_commit_interval_s=0, group_config=FAST_GROUP
        ) as c,
    ):
        assert len(c.poll(timeout=5, max_records=4)) == 4
        assert len(c.poll(timeout=5, max_records=4)) == 4  # the first 4 count now
        raise RuntimeError("processing the second batch failed")
    assert _committed(client, "g", topic) == 4
    with client.consumer(topic, "g", group_config=FAST_GROUP) as c:
        assert [r.offset for r in c.poll(timeout=5)] == [4, 5, 6, 7, 8, 9]
    assert _committed(client, "g", topic) == 10  # closed normally: the last poll counts


def test_poll_after_leaving_a_loop_returns_the_records_read_ahead(client: Client) -> None:
    """L5: records fetched by iteration but not yielded are neither lost nor
    committed: the next poll returns them."""
    topic = _topic(client, 20)
    with client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP) as c:
        for record in c:
            if record.offset == 1:
                break
        c.commit()
        assert _committed(client, "g", topic) == 2
        assert c.position(TopicPartition(topic, 0)) == 2
        assert [r.offset for r in c.poll(timeout=5)] == list(range(2, 20))


def test_seek_and_poll_inside_a_for_loop(client: Client) -> None:
    """L5: seeking or polling in the body of a for loop takes effect at once:
    the loop continues from the new position, nothing is yielded twice or
    skipped."""
    topic = _topic(client, 10)
    tp = TopicPartition(topic, 0)
    with client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP) as c:
        seen = []
        for record in c:
            seen.append(record.offset)
            if seen == [0, 1, 2]:
                c.seek(tp, 0)
            if len(seen) == 5:
                seen += [r.offset for r in c.poll(timeout=5, max_records=2)]
            if len(seen) == 9:
                break
        assert seen == [0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert _committed(client, "g", topic) == 6


def test_a_revoke_drops_read_ahead_and_commits_what_was_yielded(client: Client) -> None:
    """L4/L5: a member that read ahead and loses a partition commits only
    what it yielded of it; the new owner starts exactly there."""
    topic = f"revoke-{uuid.uuid4().hex[:8]}"
    client.create_topic(topic, partitions=2)
    producer = client.producer()
    for p in (0, 1):
        producer.send_batch(topic, [b"%d" % i for i in range(50)], partition=p)
    a = client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP)
    yielded: dict[int, list[int]] = {0: [], 1: []}
    it = iter(a)
    for _ in range(3):
        r = next(it)
        yielded[r.partition].append(r.offset)
    b = client.consumer(topic, "g", start="beginning", group_config=FAST_GROUP)
    try:
        got_b: list[tuple[int, int]] = []
        deadline = time.monotonic() + 15
        while len(a.assignment()) == 2 or not b.assignment():
            assert time.monotonic() < deadline, "the rebalance did not complete"
            for r in a.poll(timeout=0.05, max_records=1):
                yielded[r.partition].append(r.offset)
            got_b += [(r.partition, r.offset) for r in b.poll(timeout=0.05)]
        (lost,) = {0, 1} - {tp.partition for tp in a.assignment()}
        committed = client.engine.groups.committed("g")[TopicPartition(topic, lost)]
        assert committed == (yielded[lost][-1] + 1 if yielded[lost] else 0)
        while len(got_b) < 50 - committed:
            got_b += [(r.partition, r.offset) for r in b.poll(timeout=1)]
        assert got_b == [(lost, o) for o in range(committed, 50)]
    finally:
        a.close()
        b.close()
