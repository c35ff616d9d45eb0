"""Assignment strategies: coverage, balance and (sticky) stickiness."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.groups.assignors import (
    ASSIGNORS,
    Assignment,
    assign_range,
    assign_roundrobin,
    assign_sticky,
)
from tidings.message import TopicPartition as TP


def _owners(assignment: Assignment) -> Counter[TP]:
    return Counter(tp for tps in assignment.values() for tp in tps)


def _spread(assignment: Assignment) -> int:
    sizes = [len(v) for v in assignment.values()]
    return max(sizes) - min(sizes)


def test_range_gives_contiguous_ranges_per_topic() -> None:
    """Assignors: range deals each topic's partitions in contiguous ranges,
    the first members taking one extra."""
    subs = {"a": ("t", "u"), "b": ("t", "u")}
    out = assign_range(subs, {"t": 5, "u": 2}, {})
    assert out == {
        "a": [TP("t", 0), TP("t", 1), TP("t", 2), TP("u", 0)],
        "b": [TP("t", 3), TP("t", 4), TP("u", 1)],
    }


def test_roundrobin_deals_one_by_one() -> None:
    """Assignors: round-robin deals partitions one at a time in member order."""
    subs = {"a": ("t",), "b": ("t",), "c": ("t",)}
    out = assign_roundrobin(subs, {"t": 4}, {})
    assert out == {"a": [TP("t", 0), TP("t", 3)], "b": [TP("t", 1)], "c": [TP("t", 2)]}


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_members_only_get_subscribed_topics(name: str) -> None:
    """Assignors: a member is only given partitions of topics it subscribed to,
    and every subscribed partition is assigned exactly once."""
    subs = {"a": ("t",), "b": ("t", "u"), "c": ("u",)}
    out = ASSIGNORS[name](subs, {"t": 3, "u": 3}, {})
    for member, tps in out.items():
        assert all(tp.topic in subs[member] for tp in tps)
    assert _owners(out) == Counter({TP(t, p): 1 for t in "tu" for p in range(3)})


def test_no_members_assign_nothing() -> None:
    """Assignors: with no members nothing is assigned (and nothing fails)."""
    for fn in ASSIGNORS.values():
        assert fn({}, {"t": 3}, {}) == {}


members_st = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)


@given(members=members_st, partitions=st.integers(0, 40), name=st.sampled_from(sorted(ASSIGNORS)))
def test_every_partition_once_and_balanced(members: list[str], partitions: int, name: str) -> None:
    """Assignors: with one topic every partition has exactly one owner and
    loads differ by at most one."""
    subs = {m: ("t",) for m in members}
    out = ASSIGNORS[name](subs, {"t": partitions}, {})
    assert _owners(out) == Counter({TP("t", p): 1 for p in range(partitions)})
    assert _spread(out) <= 1


@given(members=members_st, partitions=st.integers(1, 40), new=st.sampled_from("xyz"))
def test_sticky_join_moves_only_what_must_move(
    members: list[str], partitions: int, new: str
) -> None:
    """Assignors: when a member joins, sticky moves partitions only to the
    newcomer, and only as many as balance requires."""
    subs = {m: ("t",) for m in members}
    before = assign_sticky(subs, {"t": partitions}, {})
    after = assign_sticky({**subs, new: ("t",)}, {"t": partitions}, before)
    for m in members:
        assert set(after[m]) <= set(before[m])  # nothing moves between old members
    assert len(after[new]) == partitions // (len(members) + 1)
    assert _spread(after) <= 1


@given(
    members=st.lists(st.sampled_from("abcdefgh"), min_size=2, max_size=8, unique=True),
    partitions=st.integers(1, 40),
    data=st.data(),
)
def test_sticky_leave_moves_only_the_leavers_partitions(
    members: list[str], partitions: int, data: st.DataObject
) -> None:
    """Assignors: when a member leaves, sticky keeps every survivor's
    partitions and spreads only the leaver's."""
    subs = {m: ("t",) for m in members}
    before = assign_sticky(subs, {"t": partitions}, {})
    gone = data.draw(st.sampled_from(members))
    rest = {m: s for m, s in subs.items() if m != gone}
    after = assign_sticky(rest, {"t": partitions}, before)
    for m in rest:
        assert set(before[m]) <= set(after[m])
    assert _owners(after) == Counter({TP("t", p): 1 for p in range(partitions)})
    assert _spread(after) <= 1


def test_sticky_keeps_an_existing_unbalanced_owner_within_one() -> None:
    """Assignors: sticky trims an overloaded member just to balance, keeping
    the rest where they are."""
    subs = {"a": ("t",), "b": ("t",)}
    current = {"a": [TP("t", p) for p in range(6)], "b": []}
    out = assign_sticky(subs, {"t": 6}, current)
    assert len(out["a"]) == len(out["b"]) == 3
    assert set(out["a"]) < set(current["a"])


def test_sticky_drops_partitions_that_no_longer_exist() -> None:
    """Assignors: partitions beyond the topic's count or of unsubscribed topics
    are not kept from the current assignment."""
    subs = {"a": ("t",)}
    current = {"a": [TP("t", 0), TP("t", 9), TP("old", 0)]}
    assert assign_sticky(subs, {"t": 2, "old": 1}, current) == {"a": [TP("t", 0), TP("t", 1)]}
