"""Group coordination (contracts L4, L5) as a port of its own.

A consumer group needs someone to say who owns which partition and to fence
commits from members that lost it. An engine that can hold state
atomically (a database, a compare-and-set register) gets that from the
default :class:`tidings.groups.stored.StoredGroups`, which applies the pure
transitions of :class:`~tidings.groups.coordinator.GroupState`. An engine
with native coordination (a broker's single-active consumer, a server-side
group) implements this Protocol directly.

All methods are blocking and thread-safe. Errors: ``FencedError`` (the
member's session ended or it does not own a partition it commits),
``TopicNotFound``, ``EngineError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..groups.coordinator import GroupState, Member, MemberView
from ..message import TopicPartition


class GroupCoordinator(Protocol):
    """Membership, assignment and committed offsets of consumer groups."""

    def join(self, group: str, member: Member, strategy: str, now: float) -> MemberView:
        """Add (or refresh) ``member``; ``strategy`` applies when the group
        is new or empty. Returns what the member owns and must give up."""
        ...

    def heartbeat(
        self, group: str, member_id: str, released: frozenset[TopicPartition], now: float
    ) -> MemberView:
        """Keep ``member_id`` alive and hand back ``released`` partitions
        (committed before). ``FencedError`` if its session had ended."""
        ...

    def leave(self, group: str, member_id: str) -> None:
        """Remove the member; its partitions go to the others at once."""
        ...

    def commit(
        self, group: str, member_id: str | None, offsets: Mapping[TopicPartition, int], now: float
    ) -> None:
        """Store committed offsets, fenced (L4): a member commits only
        partitions it owns while its session is live; ``member_id=None`` is
        a manual (group-less) commit, accepted only when no member is live."""
        ...

    def committed(self, group: str) -> dict[TopicPartition, int]: ...

    def describe(self, group: str) -> GroupState | None:
        """The group's state for display (``None``: no such group)."""
        ...

    def list_groups(self) -> list[str]: ...
    def delete_group(self, group: str) -> None: ...
