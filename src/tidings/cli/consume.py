"""``tidings consume TOPIC``: records as JSON lines.

``key`` and ``value`` are UTF-8 text when they decode as such; otherwise
they are ``{"base64": "..."}``. With ``--group``, exactly the printed
records are committed before the command exits.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from datetime import datetime
from typing import Any

from ..client.consumer import Start
from ..errors import ConfigurationError
from ..message import Record, TopicPartition
from .context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("consume", help="print a topic's records as JSON lines")
    p.add_argument("topic")
    p.add_argument("--group", help="consume as a member of this group (offsets committed)")
    p.add_argument(
        "--from",
        dest="start",
        default=None,
        help="beginning | end | OFFSET | ISO-TIME (default: the committed offset, else end)",
    )
    p.add_argument("--max", type=int, help="stop after N records")
    p.add_argument("--timeout", type=float, help="stop after S seconds with no new record")
    p.set_defaults(handler=run)


def parse_start(text: str | None) -> Start:
    """``beginning``, ``end``, an offset or an ISO-8601 time."""
    if text is None or text == "end":
        return "end"
    if text == "beginning":
        return "beginning"
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"--from {text!r}: use beginning, end, an offset or an ISO time (2026-11-22T10:00:00Z)"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def run(args: argparse.Namespace, ctx: Context) -> int:
    start = parse_start(args.start)
    consumer = ctx.client.consumer(args.topic, args.group, start=start, auto_commit=False)
    if args.group is not None and args.start is not None:
        consumer.poll(timeout=0)  # take the assignment, then apply --from over commits
        consumer.seek_to(start)
    printed: dict[TopicPartition, int] = {}
    try:
        _loop(consumer, args, printed)
    finally:
        if args.group is not None and printed:
            consumer.commit(printed)
        consumer.close()
    return 0


def _loop(consumer: Any, args: argparse.Namespace, printed: dict[TopicPartition, int]) -> None:
    count = 0
    idle_since = time.monotonic()
    while args.max is None or count < args.max:
        left = None if args.timeout is None else args.timeout - (time.monotonic() - idle_since)
        if left is not None and left <= 0:
            return
        want = 10_000 if args.max is None else args.max - count
        records = consumer.poll(timeout=1.0 if left is None else min(left, 1.0), max_records=want)
        if records:
            idle_since = time.monotonic()
        for record in records[:want]:
            sys.stdout.write(json.dumps(as_json(record)) + "\n")
            printed[TopicPartition(record.topic, record.partition)] = record.offset + 1
            count += 1
        sys.stdout.flush()


def _text(data: bytes | None) -> str | dict[str, str] | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def as_json(record: Record) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": _text(record.key),
        "value": _text(record.value),
        "timestamp": record.timestamp,
        "headers": dict(record.headers),
    }
