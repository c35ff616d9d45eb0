"""``tidings queues …``, ``publish``, ``get`` and ``dlq …``."""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from ..config import QueueConfig, parse_duration
from ..errors import AlreadyExists, ConfigurationError, QueueNotFound, TidingsError
from ..message import Delivery
from . import options
from .context import Context, dumps, fail
from .lines import read_batches, stopped, too_large

QUEUE = options.name("queue")
T = TypeVar("T")


def register(sub: Any) -> None:
    _queues(sub)
    _publish(sub)
    _get(sub)
    _dlq(sub)


def _queues(sub: Any) -> None:
    queues = sub.add_parser("queues", help="declare, list, describe, purge and delete queues")
    verbs = queues.add_subparsers(dest="verb", metavar="VERB", required=True)
    declare = verbs.add_parser("declare", help="create a queue (idempotent)")
    declare.add_argument("name", type=QUEUE, help="the queue")
    _declare_options(declare)
    declare.set_defaults(handler=_declare)
    verbs.add_parser("list", help="list queues").set_defaults(handler=_list)
    for verb, handler, text in (
        ("describe", _describe, "ready, leased, delayed, dead_lettered"),
        ("purge", _purge, "delete every message"),
        ("delete", _delete, "delete the queue"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("name", type=QUEUE, help="the queue")
        p.set_defaults(handler=handler)


def _declare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-deliveries",
        type=options.count,
        help="dead-letter a message after this many deliveries (default: no limit)",
    )
    p.add_argument(
        "--dead-letter",
        type=options.name("dead-letter queue"),
        help="dead-letter queue (created with default settings if missing; "
        "default: the queue's own <name>.dlq, created with the first dead letter)",
    )
    p.add_argument(
        "--lease",
        type=options.duration,
        default="30s",
        help="how long a delivery stays invisible to others (default 30s)",
    )
    p.add_argument("--fifo", action="store_true", help="one message in flight per group")
    p.add_argument(
        "--dedup-window",
        type=options.duration,
        default="5m",
        help="how long an idempotency key is remembered (default 5m)",
    )
    p.add_argument(
        "--ttl", type=options.duration, help="dead-letter messages not delivered within this"
    )
    p.add_argument(
        "--max-length", type=options.count, help="at most this many messages (default: no limit)"
    )
    p.add_argument(
        "--overflow",
        choices=("reject", "dead-letter"),
        default="reject",
        help="at --max-length: refuse new messages (default) or dead-letter the oldest",
    )


def _publish(sub: Any) -> None:
    p = sub.add_parser("publish", help="publish stdin lines as messages")
    p.add_argument("queue", type=QUEUE, help="the queue")
    p.add_argument(
        "--idempotency-key", help="publish a single message (all of stdin) with this key"
    )
    p.add_argument(
        "--delay", type=options.duration, default="0", help="invisible until this much later"
    )
    p.add_argument("--group", help="FIFO group key")
    p.set_defaults(handler=_do_publish)


def _get(sub: Any) -> None:
    p = sub.add_parser("get", help="lease messages and print them as JSON lines")
    p.add_argument("queue", type=QUEUE, help="the queue")
    p.add_argument(
        "--max",
        type=options.count,
        default=1,
        metavar="N",
        help="lease at most N messages (default 1)",
    )
    p.add_argument(
        "--wait",
        type=options.duration,
        default="0",
        help="wait this long for the first message (default: do not wait)",
    )
    action = p.add_mutually_exclusive_group()
    action.add_argument("--ack", action="store_true", help="ack what was printed")
    action.add_argument("--nack", action="store_true", help="put what was printed back")
    action.add_argument(
        "--reject", action="store_true", help="dead-letter what was printed (reason: rejected)"
    )
    p.add_argument(
        "--delay",
        type=options.duration,
        default="0",
        help="with --nack: visible again after this",
    )
    p.set_defaults(handler=_do_get)


def _dlq(sub: Any) -> None:
    dlq = sub.add_parser("dlq", help="dead letters of a queue")
    verbs = dlq.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="JSON lines, each with its reason")
    listing.add_argument("queue", type=QUEUE, help="the queue the dead letters came from")
    listing.set_defaults(handler=_dlq_list)
    for verb, handler, text in (
        ("redrive", _dlq_redrive, "move dead letters back to the queue"),
        ("purge", _dlq_purge, "delete the dead letters that came from the queue"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("queue", type=QUEUE, help="the queue the dead letters came from")
        p.add_argument(
            "--id",
            type=options.index,
            action="append",
            help="only this dead letter (repeatable; default: all)",
        )
        p.set_defaults(handler=handler)


def _declare(args: argparse.Namespace, ctx: Context) -> int:
    wanted = _wanted(args)  # a bad combination fails here, before anything is opened
    try:
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
    except AlreadyExists:
        why = _why_not_declared(ctx, args.name, asdict(wanted))
        if why is None:  # declared meanwhile, as asked: say what the engine said
            raise
        raise AlreadyExists(why) from None
    ctx.say(asdict(config), f"queue {config.name} declared")
    return 0


def _wanted(args: argparse.Namespace) -> QueueConfig:
    return QueueConfig(
        args.name,
        lease_s=parse_duration(args.lease, "lease"),
        max_deliveries=args.max_deliveries,
        dead_letter=args.dead_letter,
        dedup_window_s=parse_duration(args.dedup_window, "dedup_window"),
        ttl_s=None if args.ttl is None else parse_duration(args.ttl, "ttl"),
        max_length=args.max_length,
        overflow=args.overflow,
        fifo=args.fifo,
    )


def _why_not_declared(ctx: Context, name: str, wanted: dict[str, Any]) -> str | None:
    """Plain words for "exists with other settings": which settings differ
    and how to get the ones wanted (None if nothing differs any more)."""
    have = asdict(ctx.client.queue(name))
    diff = [f"{k} is {have[k]} (you asked {wanted[k]})" for k in have if have[k] != wanted[k]]
    if not diff:
        return None
    return (
        f"queue {name!r} already exists with other settings: {', '.join(diff)}. A queue's "
        f"settings do not change once declared.{_dead_letter_note(ctx, name, have)} To start "
        f"over, run `tidings queues delete {name}` (its messages go with it) and declare it again."
    )


def _dead_letter_note(ctx: Context, name: str, have: dict[str, Any]) -> str:
    users = ", ".join(sorted(q.name for q in ctx.client.queues() if q.dead_letter == name))
    if not users:
        return ""
    if have == asdict(QueueConfig(name)):
        return (
            f" It was created with default settings as the dead-letter queue of {users}: "
            "declare a dead-letter queue before the queues that use it."
        )
    return f" It is the dead-letter queue of {users}."


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
    n = _existing(ctx.client.purge_queue, args.name, "purge")
    ctx.say({"queue": args.name, "purged": n}, f"purged {n} message(s) from {args.name}")
    return 0


def _delete(args: argparse.Namespace, ctx: Context) -> int:
    _existing(ctx.client.delete_queue, args.name, "delete")
    ctx.say({"deleted": args.name}, f"deleted queue {args.name}")
    return 0


def _existing(fn: Callable[[str], T], name: str, verb: str) -> T:
    """``fn(name)``; a missing queue is "nothing to do", not "declare it"."""
    try:
        return fn(name)
    except QueueNotFound:
        raise QueueNotFound(
            f"there is no queue {name!r} to {verb} (`tidings queues list` shows the queues)"
        ) from None


def _do_publish(args: argparse.Namespace, ctx: Context) -> int:
    """Publish each batch of lines as it arrives; print its ids once durable."""
    config = ctx.client.queue(args.queue)  # QueueNotFound before reading stdin
    if args.idempotency_key is not None:
        return _publish_one(args, ctx)
    where = f"queue {args.queue!r}'s max_body_bytes"
    stored = 0
    for lines in read_batches(sys.stdin.fileno()):
        fit, error = too_large(lines, config.max_body_bytes, where)
        if fit:
            try:
                ids = ctx.client.publish_batch(
                    args.queue, lines[:fit], delay=args.delay, group=args.group
                )
            except TidingsError as exc:
                fail(f"{type(exc).__name__}: {exc}; {stopped(stored, 'message')}")
                return 2 if isinstance(exc, ConfigurationError) else 1
            stored += fit
            _print_ids(ctx, ids)
        if error is not None:
            fail(f"line {stored + 1}: {error}; {stopped(stored, 'message')}")
            return 1
    return 0


def _publish_one(args: argparse.Namespace, ctx: Context) -> int:
    body = sys.stdin.buffer.read()
    body = body[:-1] if body.endswith(b"\n") else body
    body = body[:-1] if body.endswith(b"\r") else body
    mid = ctx.client.publish(
        args.queue, body, idempotency_key=args.idempotency_key, delay=args.delay, group=args.group
    )
    _print_ids(ctx, [mid])
    return 0


def _print_ids(ctx: Context, ids: list[int]) -> None:
    """One message id per line (with --json: ``{"id":N}``)."""
    out = [(dumps({"id": i}) if ctx.json else str(i)) + "\n" for i in ids]
    if ctx.write_lines(out) < len(out):
        raise BrokenPipeError("standard output was closed")


def _do_get(args: argparse.Namespace, ctx: Context) -> int:
    """Print each delivery; settle (--ack/--nack/--reject) only those that
    reached the output; put the others back at once."""
    if parse_duration(args.delay, "delay") and not args.nack:
        raise ConfigurationError("--delay goes with --nack")
    got = ctx.client.get(args.queue, args.max, wait=args.wait)
    written = [0]
    try:
        ctx.write_lines([dumps(as_json(d)) + "\n" for d in got], written.append)
    finally:
        shown = got[: written[-1]]
        try:
            _settle(args, ctx, shown)
        finally:
            if len(shown) < len(got):  # never shown to anyone: back now, not after the lease
                ctx.client.release(got[len(shown) :])  # no delivery counted
    if len(shown) < len(got):
        raise BrokenPipeError("standard output was closed")
    return 0


def _settle(args: argparse.Namespace, ctx: Context, shown: list[Delivery]) -> None:
    if shown and args.ack:
        ctx.client.ack(shown)
    elif shown and args.nack:
        ctx.client.nack(shown, delay=args.delay)
    elif shown and args.reject:
        ctx.client.reject(shown, reason="rejected from the command line")


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
