"""Where reading starts and how far behind it is: offsets from
``"beginning"``, ``"end"``, an offset or a time, and lag. Shared by the
consumer (its ``start`` option, ``seek_to``, ``lag``) and group
administration (``reset_offsets``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from ..errors import ConfigurationError, PartitionNotFound
from ..message import TopicPartition
from ..ports.log import LogEngine, PartitionInfo

Start = Literal["beginning", "end"] | int | datetime


def start_offset(
    log: LogEngine, tp: TopicPartition, where: Start, info: PartitionInfo | None = None
) -> int:
    """The offset ``where`` means in ``tp`` (``info``: its partition info,
    if the caller has it already)."""
    if where in ("beginning", "end"):
        info = info or partition_info(log, tp)
        return info.first_offset if where == "beginning" else info.next_offset
    if isinstance(where, datetime):
        return log.offset_for_time(tp.topic, tp.partition, int(where.timestamp() * 1000))
    if isinstance(where, int):
        return where
    raise ConfigurationError(
        f"start must be beginning, end, an offset or a datetime, not {where!r}"
    )


def start_offsets(
    log: LogEngine, tps: Iterable[TopicPartition], where: Start
) -> dict[TopicPartition, int]:
    """:func:`start_offset` of many partitions, describing each topic once
    (a consumer taking 1,000 partitions described the topic 1,000 times:
    a million PartitionInfo for one start)."""
    if where not in ("beginning", "end"):
        return {tp: start_offset(log, tp, where) for tp in tps}
    wanted = set(tps)
    out = {}
    for topic in sorted({tp.topic for tp in wanted}):
        infos = {i.partition: i for i in log.describe_partitions(topic)}
        for tp in (tp for tp in wanted if tp.topic == topic):
            if tp.partition not in infos:
                raise PartitionNotFound(f"topic {topic!r} has no partition {tp.partition}")
            out[tp] = start_offset(log, tp, where, infos[tp.partition])
    return out


def partition_info(log: LogEngine, tp: TopicPartition) -> PartitionInfo:
    for info in log.describe_partitions(tp.topic):
        if info.partition == tp.partition:
            return info
    raise PartitionNotFound(f"topic {tp.topic!r} has no partition {tp.partition}")


def lag(log: LogEngine, positions: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Records between each partition's position and its end."""
    out = {}
    for topic in sorted({tp.topic for tp in positions}):
        for info in log.describe_partitions(topic):
            tp = TopicPartition(topic, info.partition)
            if tp in positions:
                out[tp] = max(0, info.next_offset - max(positions[tp], info.first_offset))
    return out
