"""Where reading starts and how far behind it is: offsets from
``"beginning"``, ``"end"``, an offset or a time, and lag. Shared by the
consumer (its ``start`` option, ``seek_to``, ``lag``) and group
administration (``reset_offsets``)."""

from __future__ import annotations

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
