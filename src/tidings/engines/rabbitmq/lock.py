"""A mutex shared by every process on the RabbitMQ node: an exclusive queue.

Declaring an exclusive queue that another connection owns is refused with
RESOURCE_LOCKED (405), so exactly one connection holds it; RabbitMQ deletes
it when that connection closes, so a holder that dies releases it at once
(no lease to wait out). Used where tidings keeps a small catalog in a queue
and must read, change and write it back without losing a concurrent change
(exchange bindings)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiormq

from ...errors import EngineTimeout
from .link import Link
from .refusals import declare_refused
from .topology import companion

LOCK_SUFFIX = ".tidings-lock"
_FIRST_WAIT_S = 0.005
_MAX_WAIT_S = 0.2


class Locks:
    """The locks of one connection. Its owner may redeclare its exclusive
    queue, so coroutines of this engine also queue on an asyncio lock."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def held(self, owner: str, patience_s: float) -> AsyncIterator[None]:
        """Hold the lock named after ``owner`` (a queue or exchange) for the
        block. Raises EngineTimeout after ``patience_s`` of waiting."""
        name = companion(owner, LOCK_SUFFIX)
        async with self._local.setdefault(name, asyncio.Lock()):
            await _acquire(self._link, name, patience_s)
            try:
                yield
            finally:
                await _release(self._link, name)

    async def try_acquire(self, owner: str) -> bool:
        """Take the lock once, without waiting; the caller keeps track of
        what it holds (this connection may take its own lock again)."""
        return await _try(self._link, companion(owner, LOCK_SUFFIX))

    async def release(self, owner: str) -> None:
        await _release(self._link, companion(owner, LOCK_SUFFIX))


async def _acquire(link: Link, name: str, patience_s: float) -> None:
    deadline = time.monotonic() + patience_s
    wait = _FIRST_WAIT_S
    while not await _try(link, name):
        if time.monotonic() > deadline:
            raise EngineTimeout(
                f"another process held the tidings lock {name!r} for {patience_s}s: "
                "retry later (a process that died releases it at once)"
            )
        await asyncio.sleep(wait)
        wait = min(wait * 2, _MAX_WAIT_S)


async def _try(link: Link, name: str) -> bool:
    async with link.scratch() as channel:
        try:
            await channel.declare_queue(
                name, exclusive=True, durable=False, arguments={"x-queue-type": "classic"}
            )
        except aiormq.exceptions.ChannelLockedResource:
            return False
        except aiormq.exceptions.ChannelClosed as exc:
            raise declare_refused(exc, "lock queue", name) from exc
    return True


async def _release(link: Link, name: str) -> None:
    async with link.scratch() as channel:
        try:
            await channel.queue_delete(name)
        except aiormq.exceptions.ChannelClosed:
            # Our connection dropped meanwhile (RabbitMQ dropped the lock with
            # it) and another one holds it now: not ours to delete.
            pass
