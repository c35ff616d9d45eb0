"""StoredGroups through the GroupCoordinator port, on real engines: join,
cooperative hand-over, fenced commits (L4), committed offsets (L5),
describe, list, delete."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import Client, TopicPartition
from tidings.errors import FencedError, GroupNotFound
from tidings.groups.coordinator import Member
from tidings.groups.stored import StoredGroups
from tidings.ports.groups import GroupCoordinator

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


@pytest.fixture(params=["memory", "sqlite"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/bus.db"
    with Client(url) as c:
        c.create_topic("t", partitions=2)
        yield c


@pytest.fixture
def groups(client: Client) -> GroupCoordinator:
    assert isinstance(client.engine.groups, StoredGroups)
    return client.engine.groups


def _member(member_id: str, session_s: float = 10.0) -> Member:
    return Member(member_id, ("t",), session_s, time.time(), member_id)


def test_a_second_member_gets_partitions_only_once_the_first_released_them(
    groups: GroupCoordinator,
) -> None:
    a = groups.join("g", _member("a"), "range", time.time())
    assert a.owned == {T0, T1} and not a.pending
    b = groups.join("g", _member("b"), "sticky", time.time())  # the group is not empty
    assert b.pending and not b.owned  # nothing is granted while "a" still owns it
    a = groups.heartbeat("g", "a", frozenset(), time.time())
    assert a.revoke and a.revoke < a.owned
    a = groups.heartbeat("g", "a", a.revoke, time.time())  # committed, now released
    b = groups.heartbeat("g", "b", frozenset(), time.time())
    assert a.owned | b.owned == {T0, T1} and not a.owned & b.owned
    state = groups.describe("g")
    assert state is not None and set(state.members) == {"a", "b"}
    assert state.strategy == "range"  # chosen by the first join, kept after


def test_commits_are_fenced_to_the_owner_and_kept(groups: GroupCoordinator) -> None:
    groups.join("g", _member("a"), "sticky", time.time())
    groups.commit("g", "a", {T0: 5, T1: 7}, time.time())
    assert groups.committed("g") == {T0: 5, T1: 7}
    with pytest.raises(FencedError):
        groups.commit("g", "stranger", {T0: 9}, time.time())
    with pytest.raises(FencedError):
        groups.commit("g", None, {T0: 9}, time.time())  # a manual commit while "a" lives
    assert groups.committed("g") == {T0: 5, T1: 7}
    groups.leave("g", "a")
    groups.commit("g", None, {T0: 1}, time.time())  # no live member: accepted
    assert groups.committed("g") == {T0: 1, T1: 7}


def test_an_expired_member_is_fenced_and_its_partitions_move(groups: GroupCoordinator) -> None:
    groups.join("g", _member("a"), "sticky", time.time())
    groups.join("g", _member("b"), "sticky", time.time())
    assert isinstance(groups, StoredGroups)
    groups.expire_sessions("g", lambda state: ["a"])
    with pytest.raises(FencedError):
        groups.heartbeat("g", "a", frozenset(), time.time())
    with pytest.raises(FencedError):
        groups.commit("g", "a", {T0: 1}, time.time())
    b = groups.heartbeat("g", "b", frozenset(), time.time())
    assert b.owned == {T0, T1}


def test_groups_are_listed_described_and_deleted(groups: GroupCoordinator) -> None:
    assert groups.describe("g") is None
    groups.join("g", _member("a"), "sticky", time.time())
    groups.commit("g", "a", {T0: 2}, time.time())
    groups.commit("solo", None, {T1: 3}, time.time())  # offsets only, no member ever
    assert {"g", "solo"} <= set(groups.list_groups())
    groups.leave("g", "a")
    groups.delete_group("g")
    assert groups.describe("g") is None and groups.committed("g") == {}
    assert "g" not in groups.list_groups()
    with pytest.raises(GroupNotFound):
        groups.delete_group("g")
