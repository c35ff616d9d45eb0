"""Publishing to RabbitMQ quorum queues, the steps inside a publish:
checks before anything is sent, dedup (dedup.py), FIFO lanes, delays
(durable per-delay queues) and the confirmed publish (confirms.py). Mixed
into RabbitQueues (queues.py), which holds the state used here."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from ...config import QueueConfig
from ...errors import QueueFull
from ...ports.queue import OutgoingMessage
from . import confirms, topology
from . import headers as hdr
from .checks import check, delay_ms
from .dedup import Dedup, wanted
from .feeds import Feeds
from .fifo import lane_of
from .link import Link


def new_id() -> int:
    """A 63-bit message id, unique without a central counter."""
    return secrets.randbits(63)


class QueuePublishing:
    """The publish half of RabbitQueues."""

    _link: Link
    _configs: dict[str, QueueConfig]
    _delays: dict[str, set[str]]
    _dedup: Dedup
    _feeds: Feeds
    _require: Callable[[str], Awaitable[QueueConfig]]
    _count: Callable[[str], Awaitable[int]]

    async def _publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]:
        config = await self._require(queue)
        await self._prepare(config, messages)
        ids = [new_id() for _ in messages]
        if wanted(config, messages):
            ids = await self._dedup.publish(config, messages, ids, partial(self._send, config))
        elif len(messages) == 1:  # no task: one loop iteration less per publish
            await self._send(config, messages[0], ids[0])
        else:
            sends = [self._send(config, m, i) for m, i in zip(messages, ids, strict=True)]
            await asyncio.gather(*sends)
        self._feeds.published(queue, sum(1 for m in messages if delay_ms(m) == 0))
        return ids

    async def _prepare(self, config: QueueConfig, messages: Sequence[OutgoingMessage]) -> None:
        """Refuse a batch ``config``'s queue would not take, before sending any."""
        check(config, messages)
        await self._room_for(config, len(messages))

    async def _room_for(self, config: QueueConfig, n: int) -> None:
        """Refuse a batch that would pass max_length (overflow reject) before
        sending any of it. A quorum queue's own reject-publish is a soft limit
        (it may take one message more) and stays as the backstop; concurrent
        publishers can still pass the limit together."""
        if config.max_length is None or config.overflow != "reject":
            return
        if await self._count(config.name) + n > config.max_length:
            raise QueueFull(
                f"queue {config.name!r} is at its max_length {config.max_length}: "
                "consume or purge it"
            )

    async def _send(self, config: QueueConfig, m: OutgoingMessage, id: int) -> None:
        due_in_ms = delay_ms(m)
        headers: dict[str, Any] = dict(m.headers)
        headers[hdr.ID] = str(id)
        target = config.name
        if m.group is not None:
            headers[hdr.GROUP] = m.group
            target = lane_of(config.name, m.group) if config.fifo else target
        if due_in_ms > 0:
            await self._publish_delayed(target, m.body, headers, id, due_in_ms, config.name)
        else:
            await self._publish_one(target, m.body, headers, id)

    async def _publish_delayed(
        self, queue: str, body: bytes, headers: dict[str, Any], id: int, delay_ms: int,
        owner: str | None = None,
    ) -> None:
        """To ``queue`` (``owner``'s lane, or ``owner`` itself) once due."""
        name, args = topology.delay_queue(queue, delay_ms)
        async with self._link.scratch() as channel:
            await channel.declare_queue(name, durable=True, arguments=args)
        self._delays.setdefault(owner or queue, set()).add(name)
        await self._publish_one(name, body, headers, id)

    async def _publish_one(self, queue: str, body: bytes, headers: dict[str, Any], id: int) -> None:
        await confirms.publish(self._link, self._configs, queue, body, headers, id)
