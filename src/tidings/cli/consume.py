"""``tidings consume TOPIC``: records as JSON lines.

``key`` and ``value`` are UTF-8 text when they decode as such; otherwise
they are ``{"base64": "..."}``. With ``--group``, before the command exits
(at ``--max``, ``--timeout``, Ctrl-C, SIGTERM or a closed output) it
commits, per partition it owns, the offset after the last record it
printed — or, where it printed none, the position it started from, so the
next run continues there even when this one printed nothing (as the
Python consumer commits its positions on close).
"""

from __future__ import annotations

import argparse
import base64
import time
from typing import Any

from ..client.consumer import Consumer
from ..message import Record, TopicPartition
from . import options
from .context import Context, dumps
from .signals import shielded

POLL_RECORDS = 10_000
WAIT_SLICE = 0.25  # seconds a poll may hold off Ctrl-C / SIGTERM


def register(sub: Any) -> None:
    p = sub.add_parser("consume", help="print a topic's records as JSON lines")
    p.add_argument("topic", type=options.name("topic"), help="the topic to read")
    p.add_argument(
        "--group",
        type=options.name("group"),
        help="consume as a member of this group (offsets committed on exit)",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=options.start,
        default=None,
        help="beginning | end | OFFSET | ISO-TIME (default: the committed offset, else end)",
    )
    p.add_argument("--max", type=options.count, metavar="N", help="stop after N records")
    p.add_argument(
        "--timeout",
        type=options.seconds,
        metavar="S",
        help="stop after S seconds with no new record",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    start = options.parse_start(args.start)
    consumer = ctx.client.consumer(args.topic, args.group, start=start, auto_commit=False)
    marks: dict[TopicPartition, int] = {}  # per partition: the offset to commit
    try:
        if args.group is not None and args.start is not None:
            with shielded():
                consumer.poll(timeout=0, max_records=1)  # take the assignment ...
                consumer.seek_to(start)  # ... then apply --from over the committed offsets
        _loop(consumer, args, ctx, marks)
    finally:
        try:
            if args.group is not None:
                owned = consumer.assignment()
                consumer.commit({tp: o for tp, o in marks.items() if tp in owned})
        finally:
            consumer.close()
    return 0


def _loop(
    consumer: Consumer, args: argparse.Namespace, ctx: Context, marks: dict[TopicPartition, int]
) -> None:
    count = 0
    idle_since = time.monotonic()
    while args.max is None or count < args.max:
        left = None if args.timeout is None else args.timeout - (time.monotonic() - idle_since)
        want = POLL_RECORDS if args.max is None else min(POLL_RECORDS, args.max - count)
        wait = WAIT_SLICE if left is None else max(0.0, min(left, WAIT_SLICE))
        # Shielded: a partition taken during the poll is marked before a
        # signal can end the command (else a new group would commit nothing).
        with shielded():
            _mark_starts(consumer, [], marks)
            records = consumer.poll(timeout=wait, max_records=want)[:want]
            _mark_starts(consumer, records, marks)
        if records:
            _print(ctx, records, marks)
            count += len(records)
            idle_since = time.monotonic()
        elif left is not None and left <= wait:  # waited the whole --timeout
            return


def _mark_starts(
    consumer: Consumer, records: list[Record], marks: dict[TopicPartition, int]
) -> None:
    """Keep ``marks`` to the owned partitions; a partition newly owned is
    marked where it starts: the first record just read from it, else its
    position."""
    owned = consumer.assignment()
    for tp in set(marks) - owned:
        del marks[tp]  # taken away: the new owner commits it
    first: dict[TopicPartition, int] = {}
    for r in records:
        first.setdefault(TopicPartition(r.topic, r.partition), r.offset)
    for tp in owned - set(marks):
        marks[tp] = first.get(tp, consumer.position(tp))


def _print(ctx: Context, records: list[Record], marks: dict[TopicPartition, int]) -> None:
    """Print ``records``; mark those that reached the output. Raises
    BrokenPipeError when the reader has gone."""
    marked = 0

    def mark(written: int) -> None:
        nonlocal marked
        for r in records[marked:written]:
            marks[TopicPartition(r.topic, r.partition)] = r.offset + 1
        marked = written

    text = [dumps(as_json(r)) + "\n" for r in records]
    if ctx.write_lines(text, mark) < len(records):
        raise BrokenPipeError("standard output was closed")


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
