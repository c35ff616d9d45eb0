"""What every command handler gets: the engine URL, the output mode and a
lazily opened :class:`~tidings.Client`.

All output goes through here, one format for every command: JSON is
compact (``{"a":1}``), one object per line, flushed as it is written so
scripts read it as it comes.
"""

from __future__ import annotations

import io
import json
import os
import select
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..client.client import Client
from ..config import default_url
from .signals import shielded

Progress = Callable[[int], None]  # called with the number of whole lines written so far


def dumps(obj: Any) -> str:
    """``obj`` as one compact JSON line (without the newline)."""
    return json.dumps(obj, separators=(",", ":"), default=str)


def fail(message: str) -> None:
    """``tidings: message`` as one line on stderr, whatever the driver put
    in it (the caller chooses the exit code)."""
    print("tidings: " + " ".join(message.split()), file=sys.stderr)


class Context:
    def __init__(self, url: str | None, json: bool) -> None:
        self.url = url or default_url()
        self.json = json
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url)
        return self._client

    def emit(self, obj: Any) -> None:
        """One JSON line on stdout.

        Raises BrokenPipeError when the reader has gone (``| head``)."""
        if self.write_lines([dumps(obj) + "\n"]) == 0:
            raise BrokenPipeError("standard output was closed")

    def say(self, obj: dict[str, Any], text: str) -> None:
        """``obj`` as a JSON line with --json, else ``text`` for people."""
        if self.json:
            self.emit(obj)
        else:
            print(text, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A plain aligned table for people."""
        cells = [[str(h) for h in headers]] + [
            ["" if c is None else str(c) for c in r] for r in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        sys.stdout.flush()

    def write_lines(self, lines: Sequence[str], on_written: Progress | None = None) -> int:
        """Write ``lines`` (each ending in one newline) to stdout; return how
        many reached it whole. Fewer than given means the reader has gone.

        ``on_written(n)`` is called each time the number of whole lines
        written grows, with Ctrl-C and SIGTERM held (:func:`shielded`): what
        the caller records as written (to commit or settle it) never lags
        or leads what was written. Waiting for a slow reader is not held:
        a signal still ends the command while the pipe is full."""
        fd = _fileno()
        if fd is None:  # not a real file (captured output): it cannot close
            with shielded():
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
                if on_written is not None and lines:
                    on_written(len(lines))
            return len(lines)
        sys.stdout.flush()  # what print() buffered goes first
        return _write_fd(fd, "".join(lines).encode(), on_written)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _write_fd(fd: int, data: bytes, on_written: Progress | None) -> int:
    # Pieces of at most PIPE_BUF once the fd is writable never block, so a
    # piece and its bookkeeping can be shielded together.
    step = len(data) if _regular(fd) else select.PIPE_BUF
    done = whole = 0
    try:
        while done < len(data):
            _wait_writable(fd)
            with shielded():
                wrote = os.write(fd, data[done : done + step])
                more = data.count(b"\n", done, done + wrote)
                done += wrote
                whole += more
                if more and on_written is not None:
                    on_written(whole)
    except BrokenPipeError:
        pass
    return whole


def _regular(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def _wait_writable(fd: int) -> None:
    try:
        select.select([], [fd], [])
    except (OSError, ValueError):  # not selectable: the write will tell
        pass


def _fileno() -> int | None:
    try:
        return sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None
