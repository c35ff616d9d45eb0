"""Embedded SQLite queues from PyPI: persist-queue and litequeue.

Neither has a batch API, so ``append`` puts (and commits) one message at a
time and ``consume`` gets and acks one at a time, as their users do. Both
run SQLite in WAL mode with the libraries' own ``synchronous`` setting
(litequeue: NORMAL, which does not fsync each commit).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import litequeue  # type: ignore[import-untyped]
import persistqueue


class PersistQueueSession:
    def __init__(self, name: str) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"{name}-")
        self.q: Any = persistqueue.SQLiteAckQueue(
            os.path.join(self.dir, "q"), auto_commit=True, multithreading=False
        )

    def append(self, values: list[bytes]) -> None:
        for v in values:
            self.q.put(v)

    def consume(self, max_records: int) -> int:
        n = 0
        for _ in range(max_records):
            try:
                item = self.q.get(block=False, raw=True)
            except persistqueue.Empty:
                break
            self.q.ack(id=item["pqid"])
            n += 1
        return n

    def close(self) -> None:
        try:
            self.q.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class LiteQueueSession:
    def __init__(self, name: str) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"{name}-")
        self.q: Any = litequeue.LiteQueue(os.path.join(self.dir, "q.db"))

    def append(self, values: list[bytes]) -> None:
        for v in values:
            self.q.put(v.decode("latin-1"))  # litequeue stores text

    def consume(self, max_records: int) -> int:
        n = 0
        for _ in range(max_records):
            msg = self.q.pop()
            if msg is None:
                break
            self.q.done(msg.message_id)
            n += 1
        return n

    def close(self) -> None:
        try:
            self.q.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def open_persist_queue(name: str) -> PersistQueueSession:
    return PersistQueueSession(name)


def open_litequeue(name: str) -> LiteQueueSession:
    return LiteQueueSession(name)
