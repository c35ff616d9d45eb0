"""Redis Streams: ``XADD`` pipelines, ``XREADGROUP`` + ``XACK`` in a group.

Durability is the server's (``appendfsync``, ``everysec`` by default):
Redis acknowledges before fsync, so its figures are not fsync-durable.
"""

from __future__ import annotations

from typing import Any

import redis

GROUP = "bench"


class RedisSession:
    def __init__(self, name: str) -> None:
        self.r = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
        self.stream = name
        self.r.xgroup_create(name, GROUP, id="0", mkstream=True)

    def append(self, values: list[bytes]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for v in values:
            pipe.xadd(self.stream, {"v": v})
        pipe.execute()

    def consume(self, max_records: int) -> int:
        got: Any = self.r.xreadgroup(GROUP, "c1", {self.stream: ">"}, count=max_records, block=5000)
        if not got:
            return 0
        ids = [mid for mid, _fields in got[0][1]]
        self.r.xack(self.stream, GROUP, *ids)
        return len(ids)

    def close(self) -> None:
        try:
            self.r.delete(self.stream)
        finally:
            self.r.close()


def open_session(name: str) -> RedisSession:
    return RedisSession(name)
