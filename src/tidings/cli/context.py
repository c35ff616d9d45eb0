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
import sys
from collections.abc import Sequence
from typing import Any

from ..client.client import Client
from ..config import default_url


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

    def write_lines(self, lines: Sequence[str]) -> int:
        """Write ``lines`` (each ending in one newline) to stdout; return how
        many reached it whole. Fewer than given means the reader has gone:
        callers settle or commit only what was written."""
        fd = _fileno()
        if fd is None:  # not a real file (captured output): it cannot close
            try:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
            except BrokenPipeError:
                return 0
            return len(lines)
        sys.stdout.flush()  # what print() buffered goes first
        data = "".join(lines).encode()
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except BrokenPipeError:
            pass
        return data.count(b"\n", 0, done)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _fileno() -> int | None:
    try:
        return sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None
