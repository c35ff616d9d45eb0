"""Checks every engine applies the same way before storing anything."""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..config import TopicConfig
from ..errors import ConfigurationError, PartitionNotFound, RecordTooLarge
from ..ports.log import RecordColumns


def now_ms() -> int:
    return int(time.time() * 1000)


def check_partition(config: TopicConfig, partition: int) -> None:
    if not isinstance(partition, int) or not 0 <= partition < config.partitions:
        raise PartitionNotFound(
            f"topic {config.name!r} has partitions 0..{config.partitions - 1}, not {partition!r}"
        )


def check_batches(config: TopicConfig, batches: Mapping[int, RecordColumns]) -> None:
    """Validate a whole produce call first, so nothing is stored half."""
    for partition, cols in batches.items():
        check_partition(config, partition)
        _check_columns(config, cols)


def _check_columns(config: TopicConfig, cols: RecordColumns) -> None:
    n = len(cols.values)
    for name, column in (("keys", cols.keys), ("headers", cols.headers)):
        if column is not None and len(column) != n:
            raise ConfigurationError(f"{name} has {len(column)} entries for {n} values")
    limit = config.max_record_bytes
    try:
        biggest = max(map(len, cols.values), default=0)  # type: ignore[arg-type]
    except TypeError:  # tombstones (None) in the batch
        biggest = max((len(v) for v in cols.values if v is not None), default=0)
    if biggest > limit:
        raise RecordTooLarge(
            f"a record of {biggest} bytes exceeds topic {config.name!r}'s "
            f"max_record_bytes={limit}; raise it or split the value"
        )
