"""What the consumer runtime needs from every engine: consumer pause and
resume, a revoke listener, a session that can be let go, and the durable
failed-event store with its delivery marks (R2, R3)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ..client.client import Client
from ..config import GroupConfig
from ..errors import AlreadyResolved, FailedEventNotFound
from ..message import TopicPartition
from ..ports.failed import DeliveryMark, FailedEvent, FailedFilter, failed_store
from ._base import ContractBase

_FAST = GroupConfig(session_timeout_s=0.6, heartbeat_interval_s=0.05)


def _event(topic: str, **changes: object) -> FailedEvent:
    values: dict[str, object] = {
        "app": "contract", "handler": "h", "host": "here", "failed_at": 1_000,
        "exception_type": "ValueError", "exception_message": "bad", "traceback": "tb",
        "call_site": "x.py:1 in h", "attempts": 3, "source": "topic", "payload": b"\x00p",
        "headers": {"a": "b"}, "key": b"k", "topic": topic, "partition": 0, "offset": 7,
        "group": "g", "history": ({"at": 1, "exception_type": "ValueError", "message": "m"},),
    }  # fmt: skip
    values.update(changes)
    return FailedEvent(**values)  # type: ignore[arg-type]


def _store(client: Client) -> Any:
    ContractBase.need(client, "failed_events")
    return failed_store(client.engine)


class FailedEventsContract(ContractBase):
    """The failed-event store (R2, R3), on its own: an engine with no log
    (``amqp://?failed_store=...``) runs these too."""

    def test_failed_events_round_trip_every_field(self, client: Client, topic: str) -> None:
        """R3: a failed event keeps every field; claims are atomic and typed."""
        store = _store(client)
        event = _event(topic)
        event_id = store.park(event)
        got = store.get(event_id)
        assert got == FailedEvent(**{**event.__dict__, "id": event_id})
        mine = FailedFilter(topic=topic)
        assert [e.id for e in store.find(mine)] == [event_id]
        assert store.groups(mine)[0].events == 1
        assert store.claim(event_id, "discarded", "tester").status == "parked"
        with pytest.raises(AlreadyResolved):
            store.claim(event_id, "republished", "tester")
        with pytest.raises(FailedEventNotFound):
            store.get(10**12)
        store.record(event_id, "discard", "tester", "ok", "")
        assert [a.action for a in store.actions(event_id)] == ["discard"]
        assert (
            store.find(mine) == [] and len(store.find(FailedFilter(topic=topic, status=None))) == 1
        )

    def test_delivery_marks_and_blocked_keys(self, client: Client, topic: str) -> None:
        """R2: delivery marks are upserted per group and partition; keys of
        parked block-key events are reported until resolved."""
        store = _store(client)
        store.mark(f"{topic}-g", topic, 0, DeliveryMark(5, 1, 9))
        store.mark(f"{topic}-g", topic, 0, DeliveryMark(5, 2, 9))
        store.mark(f"{topic}-g", topic, 1, DeliveryMark(0, 1, 3))
        assert store.marks(f"{topic}-g", topic) == {
            0: DeliveryMark(5, 2, 9), 1: DeliveryMark(0, 1, 3)
        }  # fmt: skip
        head = store.park(_event(topic, app=topic, blocks_key=True))
        store.park(_event(topic, app=topic, blocks_key=True, blocked_by=head))
        assert store.blocked_keys(topic, "h") == {b"k": head}


class RuntimeContract(FailedEventsContract):
    def test_paused_partitions_are_not_fetched_until_resumed(
        self, client: Client, topic: str
    ) -> None:
        """R2: pause one partition, the others keep flowing; resume it."""
        client.create_topic(topic, partitions=2)
        for p in (0, 1):
            client.producer().send_batch(topic, [b"v"] * 3, partition=p)
        with client.consumer(topic, start="beginning") as c:
            p0 = TopicPartition(topic, 0)
            c.pause([p0])
            got = c.poll(timeout=1)
            assert {r.partition for r in got} == {1} and c.paused() == {p0}
            c.resume([p0])
            assert [r.partition for r in c.poll(timeout=1)] == [0, 0, 0]

    def test_revoke_listener_and_expired_session(self, client: Client, topic: str) -> None:
        """L4: partitions taken away are announced before release; a member
        that lets its session go loses its partitions to the others."""
        client.create_topic(topic, partitions=2)
        revoked: list[set[TopicPartition]] = []
        group = f"{topic}-g"
        a = client.consumer(topic, group, auto_commit=False, on_revoke=revoked.append,
                            group_config=_FAST)  # fmt: skip
        b = client.consumer(topic, group, auto_commit=False, group_config=_FAST)
        try:
            deadline = time.monotonic() + 10
            while len(b.assignment()) != 1 or len(a.assignment()) != 1:
                assert time.monotonic() < deadline
                a.poll(timeout=0.05)
                b.poll(timeout=0.05)
            assert [len(r) for r in revoked] == [1]
            a.expire_session()
            while len(b.assignment()) != 2:
                assert time.monotonic() < deadline + 10
                b.poll(timeout=0.05)
        finally:
            a.close()
            b.close()
