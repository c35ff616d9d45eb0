"""``tidings groups list|describe|reset-offsets|delete``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from . import options
from .context import Context


def register(sub: Any) -> None:
    groups = sub.add_parser("groups", help="consumer groups: members, lag, offsets")
    verbs = groups.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", help="list groups").set_defaults(handler=_list)
    describe = verbs.add_parser("describe", help="members, assignment and lag per partition")
    describe.add_argument("group", type=options.name("group"), help="the group")
    describe.set_defaults(handler=_describe)
    reset = verbs.add_parser("reset-offsets", help="move a group's committed offsets")
    reset.add_argument("group", type=options.name("group"), help="the group (no live members)")
    reset.add_argument(
        "--topic", type=options.name("topic"), required=True, help="the topic whose offsets move"
    )
    reset.add_argument(
        "--to", type=options.start, required=True, help="beginning | end | OFFSET | ISO-TIME"
    )
    reset.set_defaults(handler=_reset)
    delete = verbs.add_parser("delete", help="forget a group and its offsets")
    delete.add_argument("group", type=options.name("group"), help="the group")
    delete.set_defaults(handler=_delete)


def _list(args: argparse.Namespace, ctx: Context) -> int:
    names = ctx.client.groups()
    if ctx.json:
        for name in names:
            ctx.emit({"group": name})
    else:
        for name in names:
            print(name)
    return 0


def _describe(args: argparse.Namespace, ctx: Context) -> int:
    info = ctx.client.describe_group(args.group)
    if ctx.json:
        ctx.emit(asdict(info))
        return 0
    print(
        f"group {info.group}: generation {info.generation}, strategy {info.strategy or '-'}, "
        f"{len(info.members)} live member(s)"
    )
    ctx.table(
        ("topic", "partition", "committed", "next_offset", "lag", "owner"),
        [
            (p.topic, p.partition, p.committed, p.next_offset, p.lag, p.owner)
            for p in info.partitions
        ],
    )
    return 0


def _reset(args: argparse.Namespace, ctx: Context) -> int:
    offsets = ctx.client.reset_offsets(args.group, args.topic, options.parse_start(args.to))
    for tp, offset in sorted(offsets.items()):
        if ctx.json:
            ctx.emit({"topic": tp.topic, "partition": tp.partition, "offset": offset})
        else:
            print(f"{tp.topic} {tp.partition} {offset}")
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.delete_group(args.group)
    ctx.say({"deleted": args.group}, f"deleted group {args.group}")
    return 0
