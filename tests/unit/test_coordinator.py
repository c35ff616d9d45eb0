"""Group coordination as pure transitions (L4, L5): join, heartbeat, leave,
expiry, fencing and the cooperative handoff."""

from __future__ import annotations

import pytest

from tidings.errors import FencedError
from tidings.groups.coordinator import GroupState, Member, MemberView
from tidings.message import TopicPartition as TP

TIMEOUT = 10.0
COUNTS = {"t": 4}
ALL = frozenset(TP("t", p) for p in range(4))
NONE: frozenset[TP] = frozenset()


def _member(mid: str, now: float, topics: tuple[str, ...] = ("t",)) -> Member:
    return Member(mid, topics, TIMEOUT, now)


def _assert_single_owner(state: GroupState, *views: tuple[str, MemberView]) -> None:
    """L4: what members were told they own never overlaps."""
    seen: set[TP] = set()
    for _, view in views:
        assert not view.owned & seen
        seen |= view.owned
    for mid, view in views:
        assert all(state.owners[tp] == mid for tp in view.owned)


def test_first_member_owns_everything() -> None:
    """L4: a lone member is granted every partition at once."""
    state = GroupState("g")
    view = state.join(_member("a", 0), COUNTS, 0)
    assert view == MemberView(generation=1, owned=ALL, revoke=NONE, pending=False)


def test_cooperative_handoff_waits_for_release() -> None:
    """L4: a partition moving from A to B is granted to B only after A
    released it; until then B is told partitions are pending."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    b = state.join(_member("b", 1), COUNTS, 1)
    assert b.owned == NONE and b.pending
    a = state.heartbeat("a", NONE, COUNTS, 2)
    assert a.owned == ALL and len(a.revoke) == 2
    b = state.heartbeat("b", NONE, COUNTS, 2)
    assert b.owned == NONE and b.pending  # A has not released yet
    _assert_single_owner(state, ("a", a), ("b", b))
    a = state.heartbeat("a", a.revoke, COUNTS, 3)
    assert a.revoke == NONE and len(a.owned) == 2
    b = state.heartbeat("b", NONE, COUNTS, 3)
    assert b.owned == ALL - a.owned and not b.pending
    _assert_single_owner(state, ("a", a), ("b", b))


def test_expired_member_loses_partitions_to_survivor() -> None:
    """L4: a member silent past its session is removed at the next
    transition; the survivor is granted its partitions without a release."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    state.join(_member("b", 1), COUNTS, 1)
    b = state.heartbeat("b", NONE, COUNTS, 5)
    assert b.owned == NONE and b.pending  # A is alive and has not released
    b = state.heartbeat("b", NONE, COUNTS, TIMEOUT + 1)
    assert b.owned == ALL and "a" not in state.members


def test_expired_member_is_fenced() -> None:
    """L4: a member whose session expired gets FencedError on heartbeat and
    on commit, even before anyone else noticed."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    late = TIMEOUT + 0.5
    with pytest.raises(FencedError, match="session"):
        state.heartbeat("a", NONE, COUNTS, late)
    with pytest.raises(FencedError):
        state.check_commit("a", {TP("t", 0)}, late)
    state.check_commit("a", {TP("t", 0)}, TIMEOUT - 0.5)  # still live: allowed


def test_coordinator_stall_fences_nobody() -> None:
    """L4: heartbeats issued in time but run late (the coordinator stalled,
    e.g. SQLite's write lock held by a stopped process) keep both members:
    liveness is judged when a heartbeat was issued, the stamp is when it ran."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    state.join(_member("b", 0), COUNTS, 0)
    stall_end = 3 * TIMEOUT
    state.heartbeat("a", NONE, COUNTS, 1, ran=stall_end)  # issued at 1
    state.heartbeat("b", NONE, COUNTS, 2, ran=stall_end + 0.1)
    assert set(state.members) == {"a", "b"}
    state.heartbeat("a", NONE, COUNTS, stall_end + 1)  # the next one is live
    with pytest.raises(FencedError):  # a real silence still fences
        state.heartbeat("b", NONE, COUNTS, stall_end + TIMEOUT + 1)


def test_commit_only_for_owned_partitions() -> None:
    """L4: a live member may commit only what it owns; a partition still
    pending for it is refused."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    b = state.join(_member("b", 0), COUNTS, 0)
    assert b.owned == NONE
    with pytest.raises(FencedError, match="no longer owns"):
        state.check_commit("b", {TP("t", 3)}, 1)
    state.check_commit("a", set(ALL), 1)


def test_outside_commit_only_without_live_members() -> None:
    """L5: an admin/standalone commit (no member id) is refused while the
    group has a live member, allowed once none is left."""
    state = GroupState("g")
    state.check_commit(None, {TP("t", 0)}, 0)
    state.join(_member("a", 0), COUNTS, 0)
    with pytest.raises(FencedError, match="live member"):
        state.check_commit(None, {TP("t", 0)}, 1)
    state.check_commit(None, {TP("t", 0)}, TIMEOUT + 1)


def test_unknown_member_is_fenced() -> None:
    """L4: a heartbeat from a member the group does not know raises FencedError."""
    with pytest.raises(FencedError):
        GroupState("g").heartbeat("ghost", NONE, COUNTS, 0)


def test_leave_frees_partitions_at_once() -> None:
    """L4: a member that leaves frees its partitions immediately for the others."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    state.join(_member("b", 0), COUNTS, 0)
    a = state.heartbeat("a", NONE, COUNTS, 0)
    state.heartbeat("a", a.revoke, COUNTS, 0)
    state.leave("a", COUNTS)
    assert "a" not in state.members
    assert state.heartbeat("b", NONE, COUNTS, 1).owned == ALL
    state.leave("a", COUNTS)  # leaving twice is harmless


def test_generation_counts_assignment_changes() -> None:
    """L4: the generation increases when the target assignment changes, not
    on plain heartbeats."""
    state = GroupState("g")
    g1 = state.join(_member("a", 0), COUNTS, 0).generation
    assert state.heartbeat("a", NONE, COUNTS, 1).generation == g1
    assert state.join(_member("b", 1), COUNTS, 1).generation == g1 + 1


def test_added_partitions_are_assigned_on_heartbeat() -> None:
    """L4: partitions added to a topic reach members at their next heartbeat."""
    state = GroupState("g")
    state.join(_member("a", 0), COUNTS, 0)
    view = state.heartbeat("a", NONE, {"t": 6}, 1)
    assert view.owned == {TP("t", p) for p in range(6)}


def test_members_only_get_their_topics() -> None:
    """L4: members subscribed to different topics share nothing."""
    state = GroupState("g")
    counts = {"t": 2, "u": 2}
    a = state.join(_member("a", 0, ("t",)), counts, 0)
    b = state.join(_member("b", 0, ("u",)), counts, 0)
    assert a.owned == {TP("t", 0), TP("t", 1)}
    assert b.owned == {TP("u", 0), TP("u", 1)}


def test_state_round_trips_through_json() -> None:
    """Storage: a group's state survives to_json/from_json unchanged."""
    state = GroupState("g", strategy="range")
    state.join(_member("a", 0), COUNTS, 0)
    state.join(_member("b", 1), COUNTS, 1)
    copy = GroupState.from_json(state.to_json())
    assert copy == state
