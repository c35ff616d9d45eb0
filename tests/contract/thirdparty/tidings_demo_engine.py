"""A third-party engine as a separate distribution would ship it: registered
by the ``tidings.engines`` entry point in its dist-info (next to this file),
not by anything in tidings. It serves ``demo://`` with the memory engine."""

from __future__ import annotations

from tidings.engines.memory import MemoryEngine


class DemoEngine(MemoryEngine):
    def __init__(self, url: str) -> None:
        super().__init__("memory://")
        self.url = url

