"""NATS JetStream through nats-py: a file-backed stream, async publishes
awaited per batch (each resolves on the server's ack), a durable pull
consumer acking every message.

The log workloads use a limits stream; the queue workloads a work-queue
stream (acked messages are removed). JetStream acks a publish once the
message is in its file store, before fsync (``sync_interval``, 2 min by
default).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from nats.js.api import RetentionPolicy, StorageType

URL = "nats://127.0.0.1:4222"


class NatsSession:
    def __init__(self, name: str, retention: RetentionPolicy) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # nats-py looks the loop up itself
        self.name, self.subject = name, f"{name}.in"
        self._sub: Any = None
        try:
            self.nc: Any = self._run(nats.connect(URL, connect_timeout=3, max_reconnect_attempts=0))
        except BaseException:
            asyncio.set_event_loop(None)
            self.loop.close()
            raise
        self.js = self.nc.jetstream()
        self._run(
            self.js.add_stream(
                name=name, subjects=[self.subject], storage=StorageType.FILE, retention=retention
            )
        )

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def append(self, values: list[bytes]) -> None:
        self._run(asyncio.gather(*(self.js.publish(self.subject, v) for v in values)))

    def consume(self, max_records: int) -> int:
        return int(self._run(self._consume(max_records)))

    async def _consume(self, max_records: int) -> int:
        if self._sub is None:
            self._sub = await self.js.pull_subscribe(self.subject, durable="bench")
        msgs = await self._sub.fetch(max_records, timeout=5)
        for m in msgs:
            await m.ack()
        return len(msgs)

    def close(self) -> None:
        try:
            self._run(self.js.delete_stream(self.name))
            self._run(self.nc.close())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()


def open_log(name: str) -> NatsSession:
    return NatsSession(name, RetentionPolicy.LIMITS)


def open_queue(name: str) -> NatsSession:
    return NatsSession(name, RetentionPolicy.WORK_QUEUE)
