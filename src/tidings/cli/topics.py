"""``tidings topics create|list|describe|delete|add-partitions|compact|retain``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ..config import TopicConfig, parse_duration, parse_size
from . import options
from .context import Context


def register(sub: Any) -> None:
    topics = sub.add_parser("topics", help="create, list, describe and delete topics")
    verbs = topics.add_subparsers(dest="verb", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="create a topic")
    create.add_argument("name", type=options.name("topic"), help="the topic")
    create.add_argument(
        "--partitions", type=options.count, default=1, help="how many partitions (default 1)"
    )
    create.add_argument(
        "--retention", type=options.duration, help="delete records older than this (e.g. 7d)"
    )
    create.add_argument(
        "--retention-bytes",
        type=options.size,
        help="keep at most this much per partition (e.g. 1GB)",
    )
    create.add_argument("--compact", action="store_true", help="keep the latest record per key")
    create.add_argument(
        "--tombstone-retention",
        type=options.duration,
        default="1d",
        help="with --compact: keep tombstones this long (default 1d)",
    )
    create.add_argument(
        "--durability",
        choices=("fsync", "os"),
        default="fsync",
        help="fsync: acks survive a power cut (default); os: they survive a process crash",
    )
    create.add_argument(
        "--max-record-bytes",
        type=options.size,
        default="1MB",
        help="the largest record value accepted (default 1MB)",
    )
    create.set_defaults(handler=_create)
    verbs.add_parser("list", help="list topics").set_defaults(handler=_list)
    for verb, handler, text in (
        ("describe", _describe, "per partition: first/next offset and size"),
        ("delete", _delete, "delete a topic and its records"),
        ("compact", _compact, "compact now (compacted topics)"),
        ("retain", _retain, "apply retention now"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name", type=options.name("topic"), help="the topic")
        p.set_defaults(handler=handler)
    grow = verbs.add_parser("add-partitions", help="raise the partition count")
    grow.add_argument("name", type=options.name("topic"), help="the topic")
    grow.add_argument("--total", type=options.count, required=True, help="the new partition count")
    grow.set_defaults(handler=_add_partitions)


def _create(args: argparse.Namespace, ctx: Context) -> int:
    _wanted(args)  # a bad value fails here, before anything is opened
    config = ctx.client.create_topic(
        args.name,
        args.partitions,
        retention=args.retention,
        retention_bytes=args.retention_bytes,
        compact=args.compact,
        tombstone_retention=args.tombstone_retention,
        durability=args.durability,
        max_record_bytes=args.max_record_bytes,
    )
    ctx.say(_config(config), f"created topic {config.name} with {config.partitions} partition(s)")
    return 0


def _wanted(args: argparse.Namespace) -> TopicConfig:
    """The topic ``create`` asks for; raises ConfigurationError."""
    return TopicConfig(
        name=args.name,
        partitions=args.partitions,
        retention_s=None if args.retention is None else parse_duration(args.retention, "retention"),
        retention_bytes=None
        if args.retention_bytes is None
        else parse_size(args.retention_bytes, "retention_bytes"),
        compact=args.compact,
        tombstone_retention_s=parse_duration(args.tombstone_retention, "tombstone_retention"),
        durability=args.durability,
        max_record_bytes=parse_size(args.max_record_bytes, "max_record_bytes"),
    )


def _config(config: TopicConfig) -> dict[str, Any]:
    return asdict(config)


def _list(args: argparse.Namespace, ctx: Context) -> int:
    topics = ctx.client.topics()
    if ctx.json:
        for t in topics:
            ctx.emit(_config(t))
        return 0
    rows = [
        (t.name, t.partitions, t.retention_s, t.retention_bytes, t.compact, t.durability)
        for t in topics
    ]
    ctx.table(
        ("topic", "partitions", "retention_s", "retention_bytes", "compact", "durability"), rows
    )
    return 0


def _describe(args: argparse.Namespace, ctx: Context) -> int:
    config = ctx.client.topic(args.name)
    parts = ctx.client.partitions(args.name)
    if ctx.json:
        ctx.emit({**_config(config), "partition_info": [p._asdict() for p in parts]})
        return 0
    print(f"topic {config.name}: {config.partitions} partition(s), compact={config.compact}")
    ctx.table(
        ("partition", "first_offset", "next_offset", "records", "bytes"),
        [
            (p.partition, p.first_offset, p.next_offset, p.next_offset - p.first_offset, p.size)
            for p in parts
        ],
    )
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.delete_topic(args.name)
    ctx.say({"deleted": args.name}, f"deleted topic {args.name}")
    return 0


def _add_partitions(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.add_partitions(args.name, args.total)
    ctx.say(
        {"topic": args.name, "partitions": args.total},
        f"{args.name} now has {args.total} partitions",
    )
    return 0


def _compact(args: argparse.Namespace, ctx: Context) -> int:
    removed = ctx.client.compact(args.name)
    ctx.say(
        {"topic": args.name, "removed": removed},
        f"compacted {args.name}: {removed} record(s) removed",
    )
    return 0


def _retain(args: argparse.Namespace, ctx: Context) -> int:
    removed = ctx.client.enforce_retention(args.name)
    ctx.say(
        {"topic": args.name, "removed": removed},
        f"retention on {args.name}: {removed} record(s) removed",
    )
    return 0
