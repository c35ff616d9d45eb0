"""What a consumer commits: only records the caller has had (L5, at-least-once).

Run on every engine: memory, SQLite and PostgreSQL (a schema per test)."""

from __future__ import annotations

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
    return client.engine.log.committed(group).get(TopicPartition(topic, 0))


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
