"""Where the log side keeps its settings: one CAS register (a stream, see
register.py) holding every topic's TopicConfig and every group's name,
since the stream protocol can neither list streams nor read a stream's
arguments back. Stream names, and the arguments that carry retention."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ...config import TopicConfig
from .topology import companion

CATALOG_STREAM = "tidings/catalog"  # '/' is no topic character: no clash with a partition
GROUP_PREFIX = "tidings/group/"
#: RabbitMQ's default segment size; smaller only where size retention needs it.
DEFAULT_SEGMENT = 500_000_000
#: Size retention drops whole segments: a segment is a quarter of the limit
#: (never under this), so the partition stays within 1.25 x the limit.
MIN_SEGMENT = 4096


def partition_stream(topic: str, partition: int) -> str:
    return companion(topic, f".p{partition}")


def group_stream(group: str) -> str:
    return companion(GROUP_PREFIX + group, "")


def arguments(config: TopicConfig) -> dict[str, Any]:
    """The stream arguments carrying the topic's retention. RabbitMQ applies
    them per segment: when a segment is full, whole older segments past
    ``max-age`` or beyond ``max-length-bytes`` go (never the active one)."""
    args: dict[str, Any] = {}
    segment = DEFAULT_SEGMENT
    if config.retention_s is not None:
        args["max-age"] = f"{max(1, round(config.retention_s))}s"
    if config.retention_bytes is not None:
        args["max-length-bytes"] = config.retention_bytes
        segment = min(segment, max(MIN_SEGMENT, config.retention_bytes // 4))
    args["stream-max-segment-size-bytes"] = segment
    return args


def empty() -> dict[str, Any]:
    return {"topics": {}, "groups": []}


def config_of(catalog: dict[str, Any] | None, name: str) -> TopicConfig | None:
    raw = (catalog or empty())["topics"].get(name)
    return None if raw is None else TopicConfig(**raw)


def with_topic(catalog: dict[str, Any] | None, config: TopicConfig) -> dict[str, Any]:
    new = _copy(catalog)
    new["topics"][config.name] = asdict(config)
    return new


def without_topic(catalog: dict[str, Any] | None, name: str) -> dict[str, Any]:
    new = _copy(catalog)
    new["topics"].pop(name, None)
    return new


def with_group(catalog: dict[str, Any] | None, group: str, present: bool) -> dict[str, Any]:
    new = _copy(catalog)
    groups = set(new["groups"])
    if present:
        groups.add(group)
    else:
        groups.discard(group)
    new["groups"] = sorted(groups)
    return new


def _copy(catalog: dict[str, Any] | None) -> dict[str, Any]:
    base = catalog or empty()
    return {"topics": dict(base["topics"]), "groups": list(base["groups"])}
