"""``tidings produce TOPIC``: one record per stdin line.

Lines are read as they arrive and sent in batches (up to 1,000 lines, or
whatever is available without waiting), so ``--print-acks`` prints each
line's ``partition offset`` as soon as its batch is durable, in input order.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from collections.abc import Iterator
from typing import Any

from ..client.producer import Producer
from ..errors import ConfigurationError
from .context import Context

MAX_LINES = 1000


def register(sub: Any) -> None:
    p = sub.add_parser("produce", help="append stdin lines to a topic")
    p.add_argument("topic")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key", help="the same key for every record")
    keys.add_argument(
        "--key-field",
        help="lines are JSON objects; this field's value is the key. A bad line stops the "
        "command (exit 1): lines before it are stored and acknowledged, it and later ones not",
    )
    p.add_argument("--partition", type=int, help="append to this partition")
    p.add_argument(
        "--print-acks", action="store_true", help="print 'partition offset' per line once durable"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    producer = ctx.client.producer()
    total = 0
    for lines in read_batches(sys.stdin.fileno()):
        values, keys, error = _records(lines, args)
        if values:
            total += _send(producer, args, ctx, values, keys)
        if error is not None:
            print(f"tidings: line {total + 1}: {error}; {total} record(s) stored", file=sys.stderr)
            return 1
    if not args.print_acks and not ctx.json:
        print(f"{total} record(s) produced to {args.topic}", file=sys.stderr)
    return 0


def _send(
    producer: Producer,
    args: argparse.Namespace,
    ctx: Context,
    values: list[bytes],
    keys: list[bytes | str | None] | None,
) -> int:
    metas = producer.send_batch(args.topic, values, keys, partition=args.partition)
    if args.print_acks:
        if ctx.json:
            out = "".join(
                json.dumps({"partition": m.partition, "offset": m.offset}) + "\n" for m in metas
            )
        else:
            out = "".join(f"{m.partition} {m.offset}\n" for m in metas)
        sys.stdout.write(out)
        sys.stdout.flush()
    return len(values)


def _records(
    lines: list[bytes], args: argparse.Namespace
) -> tuple[list[bytes], list[bytes | str | None] | None, str | None]:
    """Values and keys for the valid prefix of ``lines``, and the error that
    stopped it (if any)."""
    if args.key is not None:
        return lines, [args.key] * len(lines), None
    if args.key_field is None:
        return lines, None, None
    keys: list[bytes | str | None] = []
    for line in lines:
        try:
            keys.append(key_of(line, args.key_field))
        except ConfigurationError as exc:
            return lines[: len(keys)], keys, str(exc)
    return lines, keys, None


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


def read_batches(fd: int) -> Iterator[list[bytes]]:
    """Lines from ``fd`` in batches: as many as are available right now (at
    most MAX_LINES); waits only when nothing is pending."""
    pending: list[bytes] = []
    partial = b""
    while True:
        ready = _readable(fd, wait=not pending)
        chunk = os.read(fd, 1 << 16) if ready else None
        if chunk == b"":  # end of input
            if partial:
                pending.append(partial)
            if pending:
                yield pending
            return
        if chunk:
            *lines, partial = (partial + chunk).split(b"\n")
            pending.extend(line.rstrip(b"\r") for line in lines)
        if pending and (chunk is None or len(pending) >= MAX_LINES):
            while pending:
                yield pending[:MAX_LINES]
                pending = pending[MAX_LINES:]


def _readable(fd: int, wait: bool) -> bool:
    try:
        ready, _, _ = select.select([fd], [], [], None if wait else 0)
    except (OSError, ValueError):  # not selectable (e.g. a regular file): just read
        return True
    return bool(ready)
