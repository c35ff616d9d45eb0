"""Group administration: describe (members, assignment, lag) and reset offsets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ConfigurationError, GroupNotFound
from ..message import TopicPartition
from ..ports.engine import Engine


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    next_offset: int
    lag: int
    owner: str | None


@dataclass(frozen=True)
class GroupInfo:
    group: str
    generation: int
    strategy: str
    members: list[str]
    partitions: list[PartitionLag] = field(default_factory=list)


def describe_group(engine: Engine, group: str) -> GroupInfo:
    log = engine.log
    state = engine.groups.describe(group)
    committed = engine.groups.committed(group)
    if state is None and not committed:
        raise GroupNotFound(f"consumer group {group!r} does not exist")
    now = time.time()
    members = (
        [] if state is None else [m for m, mem in state.members.items() if not mem.expired(now)]
    )
    owners = {} if state is None else {tp: m for tp, m in state.owners.items() if m in members}
    topics = sorted(
        {tp.topic for tp in committed} | {tp.topic for tp in owners} | _subscribed(state)
    )
    rows = []
    existing = {t.name for t in log.list_topics()}
    for topic in topics:
        if topic not in existing:
            continue
        for info in log.describe_partitions(topic):
            tp = TopicPartition(topic, info.partition)
            done = committed.get(tp)
            lag = info.next_offset - max(
                done if done is not None else info.first_offset, info.first_offset
            )
            rows.append(
                PartitionLag(topic, info.partition, done, info.next_offset, lag, owners.get(tp))
            )
    return GroupInfo(
        group,
        0 if state is None else state.generation,
        "" if state is None else state.strategy,
        members,
        rows,
    )


def _subscribed(state: object) -> set[str]:
    members = getattr(state, "members", {}) or {}
    return {t for m in members.values() for t in m.topics}


def reset_offsets(
    engine: Engine, group: str, topic: str, to: str | int | datetime
) -> dict[TopicPartition, int]:
    log = engine.log
    offsets = {}
    for info in log.describe_partitions(topic):
        tp = TopicPartition(topic, info.partition)
        if to == "beginning":
            offsets[tp] = info.first_offset
        elif to == "end":
            offsets[tp] = info.next_offset
        elif isinstance(to, datetime):
            offsets[tp] = log.offset_for_time(topic, info.partition, int(to.timestamp() * 1000))
        elif isinstance(to, int):
            offsets[tp] = to
        else:
            raise ConfigurationError(
                f"--to must be beginning, end, an offset or a time, not {to!r}"
            )
    engine.groups.commit(group, None, offsets, time.time())
    return offsets
