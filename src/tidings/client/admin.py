"""Group administration: describe (members, assignment, lag) and reset offsets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from ..errors import ConfigurationError, GroupNotFound
from ..message import TopicPartition
from ..ports.engine import Engine
from .starts import Start, start_offset


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
    if to not in ("beginning", "end") and not isinstance(to, int | datetime):
        raise ConfigurationError(f"--to must be beginning, end, an offset or a time, not {to!r}")
    offsets = {}
    for info in engine.log.describe_partitions(topic):
        tp = TopicPartition(topic, info.partition)
        offsets[tp] = start_offset(engine.log, tp, cast(Start, to), info)
    engine.groups.commit(group, None, offsets, time.time())
    return offsets
