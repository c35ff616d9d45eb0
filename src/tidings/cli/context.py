"""What every command handler gets: the engine URL, the output mode and a
lazily opened :class:`~tidings.Client`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..client.client import Client
from ..config import default_url


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
        """One JSON line on stdout (flushed: scripts read it as it comes)."""
        sys.stdout.write(json.dumps(obj, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()

    def say(self, obj: dict[str, Any], text: str) -> None:
        """``obj`` as a JSON line with --json, else ``text`` for people."""
        if self.json:
            self.emit(obj)
        else:
            print(text)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A plain aligned table for people."""
        cells = [[str(h) for h in headers]] + [
            ["" if c is None else str(c) for c in r] for r in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
