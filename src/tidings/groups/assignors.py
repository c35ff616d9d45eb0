"""Assignment strategies: who should own which partition.

Each takes the live members' subscriptions, each topic's partition count and
the current assignment, and returns ``member -> [TopicPartition]``. ``sticky``
moves only what must move (Kafka's sticky assignor's goal): members keep
what they own while the spread stays within one partition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..message import TopicPartition

Subscriptions = Mapping[str, tuple[str, ...]]
Assignment = dict[str, list[TopicPartition]]
Assignor = Callable[
    [Subscriptions, Mapping[str, int], Mapping[str, list[TopicPartition]]], Assignment
]


def _partitions_of(topic: str, counts: Mapping[str, int]) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(counts.get(topic, 0))]


def _subscribers(topic: str, subs: Subscriptions) -> list[str]:
    return sorted(m for m, topics in subs.items() if topic in topics)


def assign_range(
    subs: Subscriptions, counts: Mapping[str, int], current: Mapping[str, list[TopicPartition]]
) -> Assignment:
    """Per topic, contiguous ranges of partitions to members in name order."""
    out: Assignment = {m: [] for m in subs}
    for topic in sorted(counts):
        members = _subscribers(topic, subs)
        parts = _partitions_of(topic, counts)
        if not members:
            continue
        share, extra = divmod(len(parts), len(members))
        start = 0
        for i, m in enumerate(members):
            n = share + (1 if i < extra else 0)
            out[m].extend(parts[start : start + n])
            start += n
    return out


def assign_roundrobin(
    subs: Subscriptions, counts: Mapping[str, int], current: Mapping[str, list[TopicPartition]]
) -> Assignment:
    """All partitions dealt one by one to the members subscribed to them."""
    out: Assignment = {m: [] for m in subs}
    members = sorted(subs)
    i = 0
    for topic in sorted(counts):
        for tp in _partitions_of(topic, counts):
            for _ in members:
                m = members[i % len(members)]
                i += 1
                if topic in subs[m]:
                    out[m].append(tp)
                    break
    return out


def assign_sticky(
    subs: Subscriptions, counts: Mapping[str, int], current: Mapping[str, list[TopicPartition]]
) -> Assignment:
    """Keep current owners; hand free partitions to the least loaded; then move
    partitions from the most to the least loaded until the spread is ≤ 1."""
    out: Assignment = {m: [] for m in subs}
    taken: set[TopicPartition] = set()
    for m, tps in current.items():
        if m not in subs:
            continue
        for tp in tps:
            if tp.topic in subs[m] and tp.partition < counts.get(tp.topic, 0) and tp not in taken:
                out[m].append(tp)
                taken.add(tp)
    for topic in sorted(counts):
        candidates = _subscribers(topic, subs)
        for tp in _partitions_of(topic, counts):
            if tp in taken or not candidates:
                continue
            out[min(candidates, key=lambda m: (len(out[m]), m))].append(tp)
            taken.add(tp)
    _balance(out, subs)
    return {m: sorted(tps) for m, tps in out.items()}


def _balance(out: Assignment, subs: Subscriptions) -> None:
    while True:
        donor = max(out, key=lambda m: (len(out[m]), m), default=None)
        if donor is None:
            return
        moved = False
        for tp in reversed(out[donor]):
            takers = [m for m in out if tp.topic in subs[m] and len(out[m]) + 1 < len(out[donor])]
            if takers:
                taker = min(takers, key=lambda m: (len(out[m]), m))
                out[donor].remove(tp)
                out[taker].append(tp)
                moved = True
                break
        if not moved:
            return


ASSIGNORS: dict[str, Assignor] = {
    "range": assign_range,
    "roundrobin": assign_roundrobin,
    "sticky": assign_sticky,
}
