"""Group membership as pure state transitions (L4, L5).

An engine loads a :class:`GroupState`, applies one transition inside a
transaction (or under a lock) and stores it back, so membership changes are
atomic and identical on every engine.

Rebalances are *cooperative*: a partition that moves from member A to B is
granted to B only after A released it (at A's next heartbeat, after
committing) or A's session expired. So a partition has at most one live
owner at any moment (L4), and a member's commit is accepted only for
partitions it owns while its session is live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import FencedError
from ..message import TopicPartition
from .assignors import ASSIGNORS


@dataclass
class Member:
    """A live member of a group."""

    member_id: str
    topics: tuple[str, ...]
    session_timeout_s: float
    last_seen: float
    client: str = ""

    def expired(self, now: float) -> bool:
        return now - self.last_seen > self.session_timeout_s


@dataclass(frozen=True)
class MemberView:
    """What one member learns from a join or heartbeat."""

    generation: int
    owned: frozenset[TopicPartition]
    revoke: frozenset[TopicPartition]
    pending: bool  # partitions are on their way to this member


@dataclass
class GroupState:
    """Everything a group coordinator stores for one group."""

    group: str
    strategy: str = "sticky"
    generation: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    owners: dict[TopicPartition, str] = field(default_factory=dict)
    target: dict[str, list[TopicPartition]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    # ---- transitions -------------------------------------------------
    def join(
        self, member: Member, counts: dict[str, int], now: float, ran: float | None = None
    ) -> MemberView:
        """Add (or refresh) a member and rebalance.

        ``now`` is when the member issued the join, ``ran`` when the
        transition runs (see :meth:`heartbeat`)."""
        member.last_seen = max(now, ran or now)
        self.members[member.member_id] = member
        self._expire(now)
        self._rebalance(counts, force=True)
        return self._grant(member.member_id)

    def heartbeat(
        self,
        member_id: str,
        released: frozenset[TopicPartition],
        counts: dict[str, int],
        now: float,
        ran: float | None = None,
    ) -> MemberView:
        """Keep a member alive, take back what it released, hand out what is free.

        ``now`` is when the member issued the heartbeat; ``ran`` is when the
        transition runs, later if the coordinator stalled (on SQLite, a
        process stopped while holding the write lock stalls every writer).
        Liveness, the member's and the others', is judged at ``now`` and the
        member is stamped at ``ran``: a stall is nobody's missed heartbeat.

        Raises :class:`FencedError` when the member's session had expired.
        """
        member = self._live_member(member_id, now)
        member.last_seen = max(now, ran or now)
        for tp in released:
            if self.owners.get(tp) == member_id:
                del self.owners[tp]
        changed = self._expire(now)
        self._rebalance(counts, force=changed)
        return self._grant(member_id)

    def leave(self, member_id: str, counts: dict[str, int]) -> None:
        """Remove a member; its partitions become free at once."""
        if self.members.pop(member_id, None) is not None:
            self._drop_owner(member_id)
            self._rebalance(counts, force=True)

    def check_commit(self, member_id: str | None, tps: set[TopicPartition], now: float) -> None:
        """Raise :class:`FencedError` unless ``member_id`` may commit ``tps``.

        ``member_id=None`` is a standalone or admin commit: allowed only while
        the group has no live member.
        """
        if member_id is None:
            live = [m for m in self.members.values() if not m.expired(now)]
            if live:
                raise FencedError(
                    f"group {self.group!r} has {len(live)} live member(s); stop them "
                    "before committing offsets from outside the group"
                )
            return
        self._live_member(member_id, now)
        lost = sorted(tp for tp in tps if self.owners.get(tp) != member_id)
        if lost:
            raise FencedError(
                f"member {member_id} of group {self.group!r} no longer owns {lost}; "
                "its commit was rejected"
            )

    # ---- internals ---------------------------------------------------
    def _live_member(self, member_id: str, now: float) -> Member:
        member = self.members.get(member_id)
        if member is None or member.expired(now):
            raise FencedError(
                f"member {member_id} of group {self.group!r} was fenced: its session "
                "expired; rejoin and resume from the committed offsets"
            )
        return member

    def _expire(self, now: float) -> bool:
        dead = [m for m, member in self.members.items() if member.expired(now)]
        for m in dead:
            del self.members[m]
            self._drop_owner(m)
        return bool(dead)

    def _drop_owner(self, member_id: str) -> None:
        for tp in [tp for tp, m in self.owners.items() if m == member_id]:
            del self.owners[tp]

    def _rebalance(self, counts: dict[str, int], force: bool) -> None:
        wanted = {t for m in self.members.values() for t in m.topics}
        counts = {t: n for t, n in counts.items() if t in wanted}
        if not force and counts == self.counts:
            return
        subs = {m: member.topics for m, member in self.members.items()}
        current = {m: list(tps) for m, tps in self.target.items() if m in subs}
        for tp, m in self.owners.items():
            if m in current and tp not in current[m]:
                current[m].append(tp)
        target = ASSIGNORS[self.strategy](subs, counts, current)
        self.counts = counts
        if target != self.target:
            self.target = target
            self.generation += 1

    def _grant(self, member_id: str) -> MemberView:
        mine = set(self.target.get(member_id, []))
        for tp in mine:
            self.owners.setdefault(tp, member_id)
        owned = frozenset(tp for tp, m in self.owners.items() if m == member_id)
        return MemberView(
            generation=self.generation,
            owned=owned,
            revoke=frozenset(owned - mine),
            pending=not mine <= owned,
        )

    # ---- storage -----------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "group": self.group,
                "strategy": self.strategy,
                "generation": self.generation,
                "members": [vars(m) for m in self.members.values()],
                "owners": [[tp.topic, tp.partition, m] for tp, m in self.owners.items()],
                "target": {m: [list(tp) for tp in tps] for m, tps in self.target.items()},
                "counts": self.counts,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> GroupState:
        raw: dict[str, Any] = json.loads(text)
        members = [Member(**{**m, "topics": tuple(m["topics"])}) for m in raw["members"]]
        return cls(
            group=raw["group"],
            strategy=raw["strategy"],
            generation=raw["generation"],
            members={m.member_id: m for m in members},
            owners={TopicPartition(t, p): m for t, p, m in raw["owners"]},
            target={m: [TopicPartition(t, p) for t, p in tps] for m, tps in raw["target"].items()},
            counts=raw["counts"],
        )
