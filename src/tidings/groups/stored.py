"""Group coordination over an engine that stores state atomically.

:class:`StoredGroups` is the default :class:`~tidings.ports.groups.GroupCoordinator`
of the memory and SQL engines: every membership change is one
``LogEngine.group_transition`` (load the :class:`GroupState`, apply a pure
transition, store it, in one transaction or under one lock), and commits
are fenced (L4) in the transaction that stores them. So every such engine
rebalances and fences the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from ..message import TopicPartition
from ..ports.log import LogEngine
from .coordinator import GroupState, Member, MemberView


class StoredGroups:
    """A :class:`~tidings.ports.groups.GroupCoordinator` over ``log``'s group storage."""

    def __init__(self, log: LogEngine) -> None:
        self.log = log

    def join(self, group: str, member: Member, strategy: str, now: float) -> MemberView:
        def fn(state: GroupState, counts: dict[str, int]) -> MemberView:
            state.strategy = state.strategy if state.members else strategy
            # Stamped when the transition runs, which may be later than
            # ``now`` if the store stalled: a stall is nobody's missed heartbeat.
            return state.join(member, counts, now, time.time())

        return self.log.group_transition(group, fn)

    def heartbeat(
        self, group: str, member_id: str, released: frozenset[TopicPartition], now: float
    ) -> MemberView:
        return self.log.group_transition(
            group, lambda s, c: s.heartbeat(member_id, released, c, now, time.time())
        )

    def leave(self, group: str, member_id: str) -> None:
        self.log.group_transition(group, lambda s, c: s.leave(member_id, c))

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        self.log.commit(group, member_id, offsets, now)

    def committed(self, group: str) -> dict[TopicPartition, int]:
        return self.log.committed(group)

    def describe(self, group: str) -> GroupState | None:
        return self.log.load_group(group)

    def list_groups(self) -> list[str]:
        return self.log.list_groups()

    def delete_group(self, group: str) -> None:
        self.log.delete_group(group)

    def expire_sessions(self, group: str, members: Callable[[GroupState], Iterable[str]]) -> None:
        """For tests of fencing (L4) only: end the sessions of the members
        ``members(state)`` names now, as if their processes had been
        stopped for longer than their session timeout. Their next heartbeat
        or commit raises FencedError; the others get their partitions."""

        def fn(state: GroupState, _counts: dict[str, int]) -> None:
            for member_id in list(members(state)):
                member = state.members[member_id]
                member.last_seen -= member.session_timeout_s + 60

        self.log.group_transition(group, fn)
