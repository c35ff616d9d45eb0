"""Consumer groups: split, single ownership (L4), fencing, takeover, resume (L5)."""

from __future__ import annotations

import contextlib
import time

import pytest

from ..client.client import Client
from ..client.consumer import Consumer
from ..errors import FencedError
from ..message import TopicPartition
from ._base import FAST_GROUP, ContractBase, expire_sessions, offsets, poll_until, tps


class GroupContract(ContractBase):
    @pytest.fixture
    def group(self, topic: str) -> str:
        return "g-" + topic[-40:]

    def _member(self, client: Client, topic: str, group: str, **options: object) -> Consumer:
        options.setdefault("start", "beginning")
        options.setdefault("group_config", FAST_GROUP)
        return client.consumer(topic, group, **options)

    def test_two_members_split_partitions_one_owner_each(
        self, client: Client, topic: str, group: str
    ) -> None:
        """L4: a second member gets half the partitions; at no moment do two
        members hold the same partition; every record is delivered."""
        self.need(client, "consumer_groups")
        client.create_topic(topic, partitions=4)
        client.producer().send_batch(topic, [b"r"] * 40, keys=[f"k{i}" for i in range(40)])
        every = tps(topic, 4)
        with contextlib.ExitStack() as stack:
            a = stack.enter_context(self._member(client, topic, group))
            seen = poll_until([a], lambda: a.assignment() == every)
            b = stack.enter_context(self._member(client, topic, group))

            def disjoint() -> None:
                assert not a.assignment() & b.assignment()

            def split() -> bool:
                return len(a.assignment()) == len(b.assignment()) == 2

            seen += poll_until([a, b], split, disjoint)
            assert a.assignment() | b.assignment() == every
            seen += poll_until([a, b], lambda: sum(a.lag().values()) + sum(b.lag().values()) == 0)
        delivered = {(r.partition, r.offset) for r in seen}
        stored = {(i.partition, o) for i in client.partitions(topic) for o in range(i.next_offset)}
        assert delivered == stored

    def test_expired_member_is_fenced_and_survivor_takes_over(
        self, client: Client, topic: str, group: str
    ) -> None:
        """L4: once a member's session has expired its commit raises
        FencedError (nothing stored) and the survivor gets its partitions."""
        self.need(client, "consumer_groups")
        client.create_topic(topic, partitions=4)
        every = tps(topic, 4)
        with contextlib.ExitStack() as stack:
            a = stack.enter_context(self._member(client, topic, group, auto_commit=False))
            b = stack.enter_context(self._member(client, topic, group))
            poll_until([a, b], lambda: len(a.assignment()) == len(b.assignment()) == 2)
            lost = a.assignment()
            owner = next(iter(lost))
            if not expire_sessions(client, group, lambda state: [state.owners[owner]]):
                a.expire_session()  # a native coordinator: let the session run out
                time.sleep(FAST_GROUP.session_timeout_s + 0.5)
            with pytest.raises(FencedError):
                a.commit({tp: 1 for tp in lost})
            assert not set(client.engine.groups.committed(group)) & lost
            poll_until([b], lambda: b.assignment() == every)

    def test_commit_of_unowned_partition_is_fenced(
        self, client: Client, topic: str, group: str
    ) -> None:
        """L4: a live member cannot commit a partition it does not own."""
        self.need(client, "consumer_groups")
        client.create_topic(topic, partitions=2)
        with self._member(client, topic, group) as a:
            poll_until([a], lambda: a.assignment() == tps(topic, 2))
            with pytest.raises(FencedError):
                a.commit({TopicPartition(topic, 5): 1})
            a.commit({TopicPartition(topic, 0): 0})
        assert client.engine.groups.committed(group) == {
            TopicPartition(topic, 0): 0,
            TopicPartition(topic, 1): 0,
        }

    def test_resume_from_committed_offset(self, client: Client, topic: str, group: str) -> None:
        """L5: a member resumes from the group's committed offset (not from
        its start option); close commits what was consumed (auto-commit)."""
        self.need(client, "consumer_groups")
        client.create_topic(topic)
        client.producer().send_batch(topic, [str(i).encode() for i in range(10)])
        tp = TopicPartition(topic, 0)
        with self._member(client, topic, group, auto_commit=False) as first:
            got = poll_until([first], lambda: first.lag() == {tp: 0})
            assert offsets(got) == list(range(10))
            first.commit({tp: 6})
        with self._member(client, topic, group, start="end") as second:
            got = poll_until([second], lambda: bool(second.assignment()) and second.lag()[tp] == 0)
            assert offsets(got) == [6, 7, 8, 9]
        assert client.engine.groups.committed(group) == {tp: 10}
        with self._member(client, topic, group) as third:
            poll_until([third], lambda: bool(third.assignment()))
            assert third.poll(timeout=0) == []
            client.produce(topic, b"new")
            assert offsets(poll_until([third], lambda: third.lag() == {tp: 0})) == [10]

    def test_group_is_listed_and_described_with_lag(
        self, client: Client, topic: str, group: str
    ) -> None:
        """L5: a group with commits is listed; describe shows its live
        members, each partition's owner, committed offset and lag."""
        self.need(client, "consumer_groups")
        client.create_topic(topic, partitions=2)
        client.producer().send_batch(topic, [b"x"] * 5, partition=0)
        with self._member(client, topic, group, auto_commit=False) as a:
            poll_until([a], lambda: a.assignment() == tps(topic, 2))
            a.commit({TopicPartition(topic, 0): 2, TopicPartition(topic, 1): 0})
            info = client.describe_group(group)
            assert group in client.groups()
            assert len(info.members) == 1
            rows = {(r.partition, r.committed, r.lag) for r in info.partitions}
            assert rows == {(0, 2, 3), (1, 0, 0)}
            assert {r.owner for r in info.partitions} == set(info.members)
