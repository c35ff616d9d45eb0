"""Queue operations of :class:`~tidings.AsyncClient`: each one line over its
blocking twin in :mod:`.queues` (one thread hop per call, never per message)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from ..config import QueueConfig
from ..errors import ConfigurationError, TidingsError
from ..message import Delivery, Headers, QueueStats
from .client import Client

R = TypeVar("R")


class AsyncQueueMethods:
    """See :class:`~tidings.client.queues.QueueMethods` for each method's contract."""

    _sync: Client

    async def _q(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, partial(fn, *args, **kwargs))

    async def declare_queue(self, name: str, **options: Any) -> QueueConfig:
        return await self._q(self._sync.declare_queue, name, **options)

    async def queues(self) -> list[QueueConfig]:
        return await self._q(self._sync.queues)

    async def queue(self, name: str) -> QueueConfig:
        return await self._q(self._sync.queue, name)

    async def queue_stats(self, name: str) -> QueueStats:
        return await self._q(self._sync.queue_stats, name)

    async def purge_queue(self, name: str) -> int:
        return await self._q(self._sync.purge_queue, name)

    async def delete_queue(self, name: str) -> None:
        await self._q(self._sync.delete_queue, name)

    async def publish(self, queue: str, body: bytes | str, **options: Any) -> int:
        return await self._q(self._sync.publish, queue, body, **options)

    async def publish_batch(
        self, queue: str, bodies: Sequence[bytes | str], **options: Any
    ) -> list[int]:
        return await self._q(self._sync.publish_batch, queue, bodies, **options)

    async def get(
        self, queue: str, max_messages: int = 1, wait: float | str = 0, auto_ack: bool = False
    ) -> list[Delivery]:
        return await self._q(self._sync.get, queue, max_messages, wait, auto_ack)

    async def ack(self, deliveries: Delivery | Sequence[Delivery]) -> None:
        await self._q(self._sync.ack, deliveries)

    async def nack(self, deliveries: Delivery | Sequence[Delivery], delay: float | str = 0) -> None:
        await self._q(self._sync.nack, deliveries, delay)

    async def reject(
        self, deliveries: Delivery | Sequence[Delivery], reason: str = "rejected"
    ) -> None:
        await self._q(self._sync.reject, deliveries, reason)

    async def extend_lease(self, delivery: Delivery, lease: float | str) -> Delivery:
        return await self._q(self._sync.extend_lease, delivery, lease)

    async def subscribe(self, queue: str, prefetch: int = 10) -> AsyncGenerator[Delivery, None]:
        """Push-style, as the blocking ``subscribe``: at most ``prefetch``
        leased at a time, one thread hop per batch; deliveries not yet
        yielded are put back when the iterator is closed."""
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be >= 1, got {prefetch}")
        buffer: list[Delivery] = []
        try:
            while True:
                if not buffer:
                    buffer = await self.get(queue, prefetch, wait=1.0)
                while buffer:
                    yield buffer.pop(0)
        finally:
            if buffer:
                with contextlib.suppress(TidingsError):  # else their leases run out
                    self._sync.nack(buffer)

    async def declare_exchange(self, name: str, kind: str = "fanout") -> None:
        await self._q(self._sync.declare_exchange, name, kind)

    async def bind(self, exchange: str, queue: str, key: str = "", weight: int = 1) -> None:
        await self._q(self._sync.bind, exchange, queue, key, weight)

    async def bind_topic(self, topic: str, queue: str) -> None:
        await self._q(self._sync.bind_topic, topic, queue)

    async def publish_to(
        self,
        exchange: str,
        body: bytes | str,
        routing_key: str = "",
        headers: Headers | None = None,
    ) -> dict[str, int]:
        return await self._q(self._sync.publish_to, exchange, body, routing_key, headers)

    async def dead_letters(self, queue: str, limit: int = 1000) -> list[Delivery]:
        return await self._q(self._sync.dead_letters, queue, limit)

    async def redrive(self, queue: str, ids: Sequence[int] | None = None) -> int:
        return await self._q(self._sync.redrive, queue, ids)

    async def purge_dead_letters(self, queue: str, ids: Sequence[int] | None = None) -> int:
        return await self._q(self._sync.purge_dead_letters, queue, ids)
