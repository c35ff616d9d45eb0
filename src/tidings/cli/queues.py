"""``tidings queues …``, ``publish``, ``get`` and ``dlq …``."""

from __future__ import annotations

import argparse
import base64
import sys
from dataclasses import asdict
from typing import Any

from ..errors import ConfigurationError
from ..message import Delivery
from .context import Context


def register(sub: Any) -> None:
    _queues(sub)
    _publish(sub)
    _get(sub)
    _dlq(sub)


def _queues(sub: Any) -> None:
    queues = sub.add_parser("queues", help="declare, list, describe, purge and delete queues")
    verbs = queues.add_subparsers(dest="verb", metavar="VERB", required=True)
    declare = verbs.add_parser("declare", help="create a queue (idempotent)")
    declare.add_argument("name")
    declare.add_argument("--max-deliveries", type=int)
    declare.add_argument("--dead-letter", help="dead-letter queue (created if missing)")
    declare.add_argument("--lease", default="30s", help="visibility timeout")
    declare.add_argument("--fifo", action="store_true", help="one message in flight per group")
    declare.add_argument("--dedup-window", default="5m")
    declare.add_argument("--ttl", help="dead-letter messages not delivered within this")
    declare.add_argument("--max-length", type=int)
    declare.add_argument("--overflow", choices=("reject", "dead-letter"), default="reject")
    declare.set_defaults(handler=_declare)
    verbs.add_parser("list", help="list queues").set_defaults(handler=_list)
    for verb, handler, text in (
        ("describe", _describe, "ready, leased, delayed, dead_lettered"),
        ("purge", _purge, "delete every message"),
        ("delete", _delete, "delete the queue"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name")
        p.set_defaults(handler=handler)


def _publish(sub: Any) -> None:
    p = sub.add_parser("publish", help="publish stdin lines as messages")
    p.add_argument("queue")
    p.add_argument(
        "--idempotency-key", help="publish a single message (all of stdin) with this key"
    )
    p.add_argument("--delay", default="0", help="invisible until this much later")
    p.add_argument("--group", help="FIFO group key")
    p.set_defaults(handler=_do_publish)


def _get(sub: Any) -> None:
    p = sub.add_parser("get", help="lease messages and print them as JSON lines")
    p.add_argument("queue")
    p.add_argument("--max", type=int, default=1)
    p.add_argument("--wait", default="0", help="wait this long for the first message")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--ack", action="store_true")
    action.add_argument("--nack", action="store_true")
    action.add_argument("--reject", action="store_true")
    p.add_argument("--delay", default="0", help="with --nack: visible again after this")
    p.set_defaults(handler=_do_get)


def _dlq(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="dead letters of a queue")
    verbs = dlq.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="JSON lines, each with its reason")
    listing.add_argument("queue")
    listing.set_defaults(handler=_dlq_list)
    redrive = verbs.add_parser("redrive", help="move dead letters back to the queue")
    redrive.add_argument("queue")
    redrive.add_argument(
        "--id", type=int, action="append", help="only this dead letter (repeatable)"
    )
    redrive.set_defaults(handler=_dlq_redrive)
    purge = verbs.add_parser("purge", help="delete the dead letters that came from the queue")
    purge.add_argument("queue")
    purge.add_argument("--id", type=int, action="append", help="only this dead letter (repeatable)")
    purge.set_defaults(handler=_dlq_purge)


def _declare(args: argparse.Namespace, ctx: Context) -> int:
    config = ctx.client.declare_queue(
        args.name,
        lease=args.lease,
        max_deliveries=args.max_deliveries,
        dead_letter=args.dead_letter,
        dedup_window=args.dedup_window,
        ttl=args.ttl,
        max_length=args.max_length,
        overflow=args.overflow,
        fifo=args.fifo,
    )
    ctx.say(asdict(config), f"queue {config.name} declared")
    return 0


def _list(args: argparse.Namespace, ctx: Context) -> int:
    configs = ctx.client.queues()
    if ctx.json:
        for c in configs:
            ctx.emit(asdict(c))
        return 0
    rows = [(c.name, c.lease_s, c.max_deliveries, c.dead_letter, c.fifo) for c in configs]
    ctx.table(("queue", "lease_s", "max_deliveries", "dead_letter", "fifo"), rows)
    return 0


def _describe(args: argparse.Namespace, ctx: Context) -> int:
    stats = ctx.client.queue_stats(args.name)
    config = ctx.client.queue(args.name)
    if ctx.json:
        ctx.emit({**stats._asdict(), "config": asdict(config)})
        return 0
    ctx.table(
        ("queue", "ready", "leased", "delayed", "dead_lettered"),
        [(stats.name, stats.ready, stats.leased, stats.delayed, stats.dead_lettered)],
    )
    return 0


def _purge(args: argparse.Namespace, ctx: Context) -> int:
    n = ctx.client.purge_queue(args.name)
    ctx.say({"queue": args.name, "purged": n}, f"purged {n} message(s) from {args.name}")
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.delete_queue(args.name)
    ctx.say({"deleted": args.name}, f"deleted queue {args.name}")
    return 0


def _do_publish(args: argparse.Namespace, ctx: Context) -> int:
    data = sys.stdin.buffer.read()
    if args.idempotency_key is not None:
        one = ctx.client.publish(
            args.queue,
            data.rstrip(b"\n"),
            idempotency_key=args.idempotency_key,
            delay=args.delay,
            group=args.group,
        )
        ids = [one]
    else:
        bodies = data.split(b"\n")
        if bodies and bodies[-1] == b"":
            bodies.pop()
        ids = ctx.client.publish_batch(args.queue, bodies, delay=args.delay, group=args.group)
    for mid in ids:
        ctx.say({"id": mid}, str(mid))
    return 0


def _do_get(args: argparse.Namespace, ctx: Context) -> int:
    if args.delay != "0" and not args.nack:
        raise ConfigurationError("--delay goes with --nack")
    got = ctx.client.get(args.queue, args.max, wait=args.wait)
    for d in got:
        ctx.emit(as_json(d))
    if got and args.ack:
        ctx.client.ack(got)
    elif got and args.nack:
        ctx.client.nack(got, delay=args.delay)
    elif got and args.reject:
        ctx.client.reject(got, reason="rejected from the command line")
    return 0


def _dlq_list(args: argparse.Namespace, ctx: Context) -> int:
    for d in ctx.client.dead_letters(args.queue):
        ctx.emit({**as_json(d), "reason": d.headers.get("x-dead-letter-reason", "")})
    return 0


def _dlq_redrive(args: argparse.Namespace, ctx: Context) -> int:
    n = ctx.client.redrive(args.queue, args.id)
    ctx.say({"queue": args.queue, "redriven": n}, f"redrove {n} message(s) to {args.queue}")
    return 0


def _dlq_purge(args: argparse.Namespace, ctx: Context) -> int:
    n = ctx.client.purge_dead_letters(args.queue, args.id)
    ctx.say({"queue": args.queue, "purged": n}, f"purged {n} dead letter(s) of {args.queue}")
    return 0


def _text(data: bytes) -> str | dict[str, str]:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def as_json(d: Delivery) -> dict[str, Any]:
    return {
        "queue": d.queue,
        "id": d.id,
        "body": _text(d.body),
        "headers": dict(d.headers),
        "delivery_count": d.delivery_count,
        "redelivered": d.redelivered,
    }
