"""Clients on hosts whose clocks disagree share one PostgreSQL (issue 8):
leases, delays, TTL and group sessions are judged by the database's clock,
so a client whose clock is two minutes off steals no lease and expires no
live member. (SQLite is one host: one clock.)"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tidings import Client
from tidings.groups.coordinator import Member

SKEW_S = 120.0


def _skew(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)


def _join(client: Client, group: str, member_id: str, topic: str) -> Any:
    now = time.time()  # as the client's membership does: its own clock
    member = Member(member_id, (topic,), 10.0, now, member_id)
    return client.engine.groups.join(group, member, "sticky", now)


def _members(client: Client, group: str) -> set[str]:
    state = client.engine.groups.describe(group)
    return set() if state is None else set(state.members)


def test_a_client_whose_clock_runs_ahead_steals_no_lease_and_expires_no_member(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client two minutes ahead: a message another client holds under a
    30 s lease stays leased, a message with a 60 s TTL is delivered (not
    dead-lettered), what it publishes without delay is ready at once for
    the others, and joining a group keeps the member that is live."""
    suffix = uuid.uuid4().hex[:6]
    names = ("l", "t", "f", "tp", "g", "fw")
    leased, ttl, fresh, topic, group, fed = (f"{n}-{suffix}" for n in names)
    honest = Client(pg_schema_url)
    honest.create_topic(topic)
    honest.declare_queue(fed)
    honest.bind_topic(topic, fed)
    honest.declare_queue(leased, lease="30s")
    honest.declare_queue(ttl, ttl="60s")
    honest.declare_queue(fresh)
    honest.publish(leased, b"held")
    assert [d.body for d in honest.get(leased, 1)] == [b"held"]
    honest.publish(ttl, b"young")
    _join(honest, group, "honest", topic)

    _skew(monkeypatch, SKEW_S)
    ahead = Client(pg_schema_url)
    assert ahead.get(leased, 10) == [], "the lease was taken over by a fast clock"
    young = ahead.get(ttl, 10)
    assert [d.body for d in young] == [b"young"], "expired by a fast clock"
    # Times handed out are in the caller's own clock, as it compares them.
    assert abs(young[0].lease_until / 1000 - (time.time() + 30)) < 5
    ahead.publish(fresh, b"later", delay="20s")
    due = ahead.engine.queues.next_visible(fresh)
    assert due is not None and abs(due / 1000 - (time.time() + 20)) < 5
    ahead.ack(young)
    ahead.publish(fresh, b"now")
    ahead.producer().send_batch(topic, [b"forwarded"])  # to the queue fed by the topic
    _join(ahead, group, "ahead", topic)
    assert _members(ahead, group) == {"honest", "ahead"}, "a live member was expired"
    ahead.close()
    monkeypatch.undo()

    assert [d.body for d in honest.get(fresh, 10)] == [b"now"], "delayed by a fast clock"
    assert honest.get(fresh, 10) == [], "a 20 s delay was cut short"
    assert [d.body for d in honest.get(fed, 10)] == [b"forwarded"], "delayed by a fast clock"
    honest.close()


def test_a_client_whose_clock_runs_behind_is_not_expired_by_the_others(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member two minutes behind joins; an honest member's next join does
    not expire it, and a delay it asks for is not cut short."""
    suffix = uuid.uuid4().hex[:6]
    topic, group, delayed = f"tp-{suffix}", f"g-{suffix}", f"d-{suffix}"
    honest = Client(pg_schema_url)
    honest.create_topic(topic)
    honest.declare_queue(delayed)
    _skew(monkeypatch, -SKEW_S)
    behind = Client(pg_schema_url)
    _join(behind, group, "behind", topic)
    behind.publish(delayed, b"later", delay="30s")
    behind.close()
    monkeypatch.undo()

    _join(honest, group, "honest", topic)
    assert _members(honest, group) == {"behind", "honest"}, "a live member was expired"
    assert honest.get(delayed, 10) == [], "a 30 s delay was cut short by a slow clock"
    honest.close()
