"""``tidings produce TOPIC``: one record per stdin line.

Lines are read as they arrive and sent in batches (up to 10,000 lines, or
whatever is available without waiting), so ``--print-acks`` prints each
line's ``partition offset`` as soon as its batch is durable, in input order.
A line that cannot be stored (bad ``--key-field`` line, value over the
topic's ``max_record_bytes``) stops the command with exit code 1 after the
lines before it are stored; the message says exactly how many were.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client.producer import Producer
from ..errors import ConfigurationError, TidingsError
from . import options
from .context import Context, dumps, fail
from .lines import read_batches, stopped, too_large


def register(sub: Any) -> None:
    p = sub.add_parser("produce", help="append stdin lines to a topic")
    p.add_argument("topic", type=options.name("topic"), help="the topic to append to")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key", help="the same key for every record")
    keys.add_argument(
        "--key-field",
        help="lines are JSON objects; this field's value is the key. A bad line stops the "
        "command (exit 1): lines before it are stored and acknowledged, it and later ones not",
    )
    p.add_argument(
        "--partition", type=options.index, help="append to this partition (default: by key)"
    )
    p.add_argument(
        "--print-acks",
        action="store_true",
        help="once durable, print 'PARTITION OFFSET' per line, in input order "
        '(with --json: {"partition":P,"offset":O}); OFFSET is - (null) on an engine '
        "that learns offsets only when reading",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    limit = ctx.client.topic(args.topic).max_record_bytes  # TopicNotFound before reading
    where = f"topic {args.topic!r}'s max_record_bytes"
    producer = ctx.client.producer()
    stored = 0
    for lines in read_batches(sys.stdin.fileno()):
        values, keys, error = _records(lines, args, limit, where)
        if values:
            try:
                _send(producer, args, ctx, values, keys)
            except TidingsError as exc:
                fail(f"{type(exc).__name__}: {exc}; {stopped(stored, 'record')}")
                return 2 if isinstance(exc, ConfigurationError) else 1
            stored += len(values)
        if error is not None:
            fail(f"line {stored + 1}: {error}; {stopped(stored, 'record')}")
            return 1
    if not args.print_acks and not ctx.json:
        print(f"{stored} record(s) produced to {args.topic}", file=sys.stderr)
    return 0


def _send(
    producer: Producer,
    args: argparse.Namespace,
    ctx: Context,
    values: list[bytes],
    keys: list[bytes | str | None] | None,
) -> None:
    metas = producer.send_batch(args.topic, values, keys, partition=args.partition)
    if not args.print_acks:
        return
    if ctx.json:
        out = [dumps({"partition": m.partition, "offset": m.offset}) + "\n" for m in metas]
    else:
        # "-": the engine tells offsets only to readers (Features.append_offsets)
        out = [f"{m.partition} {'-' if m.offset is None else m.offset}\n" for m in metas]
    if ctx.write_lines(out) < len(out):
        raise BrokenPipeError("standard output was closed")


def _records(
    lines: list[bytes], args: argparse.Namespace, limit: int, where: str
) -> tuple[list[bytes], list[bytes | str | None] | None, str | None]:
    """Values and keys for the valid prefix of ``lines``, and the error that
    stopped it (if any)."""
    fit, error = too_large(lines, limit, where)
    lines = lines[:fit]
    if args.key is not None:
        return lines, [args.key] * len(lines), error
    if args.key_field is None:
        return lines, None, error
    keys: list[bytes | str | None] = []
    for line in lines:
        try:
            keys.append(key_of(line, args.key_field))
        except ConfigurationError as exc:
            return lines[: len(keys)], keys, str(exc)
    return lines, keys, error


def key_of(line: bytes, field: str) -> str:
    """The key of a JSON-object line: its ``field``, as text."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise ConfigurationError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or field not in obj:
        raise ConfigurationError(f"not a JSON object with a {field!r} field")
    value = obj[field]
    return value if isinstance(value, str) else json.dumps(value)
