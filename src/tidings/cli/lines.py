"""Reading stdin as lines, in batches of what has arrived (``produce`` and
``publish``), and saying exactly what was stored when input stops early."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

MAX_LINES = 10_000  # per batch: fewer durable commits when input is all there
MAX_BYTES = 8 << 20  # ... and memory bounded when lines are large


def read_batches(fd: int) -> Iterator[list[bytes]]:
    """Lines from ``fd`` (without ``\\n`` or ``\\r\\n``) in batches: as many
    as are available right now (at most MAX_LINES; about MAX_BYTES at
    most); waits only when nothing is pending, so each batch can be
    stored before more input arrives."""
    pending: list[bytes] = []
    size = 0
    partial = b""
    while True:
        ready = _readable(fd, wait=not pending)
        chunk = os.read(fd, 1 << 16) if ready else None
        if chunk == b"":  # end of input
            if partial:
                pending.append(partial.rstrip(b"\r"))
            if pending:
                yield pending
            return
        if chunk:
            *lines, partial = (partial + chunk).split(b"\n")
            pending.extend(line.rstrip(b"\r") for line in lines)
            size += len(chunk)
        if pending and (chunk is None or len(pending) >= MAX_LINES or size >= MAX_BYTES):
            while pending:
                yield pending[:MAX_LINES]
                pending = pending[MAX_LINES:]
            size = len(partial)


def _readable(fd: int, wait: bool) -> bool:
    try:
        ready, _, _ = select.select([fd], [], [], None if wait else 0)
    except (OSError, ValueError):  # not selectable (e.g. a regular file): just read
        return True
    return bool(ready)


def too_large(lines: list[bytes], limit: int, where: str) -> tuple[int, str | None]:
    """How many leading ``lines`` fit ``limit`` bytes, and why the next one
    does not (None if all fit). ``where``: e.g. "topic 'orders''s max_record_bytes"."""
    for i, line in enumerate(lines):
        if len(line) > limit:
            return i, f"a value of {len(line)} bytes exceeds {where}={limit}"
    return len(lines), None


def stopped(stored: int, noun: str) -> str:
    """What a stop after ``stored`` stored lines left behind, in words."""
    kept = f"lines 1-{stored}" if stored > 1 else ("line 1" if stored else "none")
    return f"{stored} {noun}(s) stored ({kept}); line {stored + 1} and later were not"
