"""The queue operations an ``AsyncClient`` awaits on its own event loop
(ports.queue.AsyncPublishing, AsyncConsuming): the same coroutines the
blocking methods hand to the portal, awaited with no thread hop when the
engine runs on the caller's loop. Mixed into RabbitQueues (queues.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ...backoff import Backoff
from ...message import Delivery
from ...ports.queue import OutgoingMessage, Settlement
from .link import Dropped, Link
from .portal import Portal

T = TypeVar("T")


class AwaitedQueues:
    """The awaited half of RabbitQueues."""

    _portal: Portal
    _link: Link
    _timeout: float
    _poll_s: float
    _publish: Callable[[str, Sequence[OutgoingMessage]], Coroutine[Any, Any, list[int]]]
    _settle: Callable[[str, Sequence[Settlement]], Coroutine[Any, Any, list[BaseException | None]]]
    _claim: Callable[[str, int], Coroutine[Any, Any, list[Delivery]]]

    async def _awaited(self, make: Any, *args: Any) -> Any:
        """``make(*args)`` awaited on the engine's loop. The coroutine is
        made only once the portal can run it (none is left unawaited)."""
        self._portal.ready()
        coro: Coroutine[Any, Any, Any] = self._link.guard(make(*args))
        return await self._portal.run(coro, self._timeout)

    async def apublish(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[int]:
        """:meth:`publish`, awaited."""
        ids: list[int] = await self._awaited(self._publish, queue, messages)
        return ids

    async def asettle(
        self, queue: str, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]:
        """:meth:`settle`, awaited."""
        out: list[BaseException | None] = await self._awaited(
            self._settle, queue, settlements
        )
        return out

    async def aclaim(self, queue: str, max_messages: int, wait_s: float) -> list[Delivery]:
        """:meth:`claim`, awaited, waiting up to ``wait_s`` for a first
        message: asked again every ``poll_interval`` (a basic.get has no
        wake-up), as a blocking ``get`` on this engine does."""
        deadline = time.monotonic() + wait_s
        while True:
            got = await self._claim_once(queue, max_messages)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            await asyncio.sleep(min(left, self._poll_s))

    async def _claim_once(self, queue: str, max_messages: int) -> list[Delivery]:
        """Claimed again after a drop, for up to reconnect_timeout (see
        :meth:`RabbitQueues.claim`)."""
        deadline = time.monotonic() + self._link.reconnect_s
        backoff = Backoff(0.05, 1.0)
        while True:
            try:
                got: list[Delivery] = await self._awaited(
                    self._claim, queue, max_messages
                )
                return got
            except Dropped:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(backoff.next())
