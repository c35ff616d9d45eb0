"""Queue operations of :class:`~tidings.AsyncClient`: each one line over its
blocking twin in :mod:`.queues` (one thread hop per call, never per
message), except where the engine can be awaited on this loop
(ports.queue.AsyncPublishing, AsyncConsuming: publish, get and settling on
amqp://), which takes no hop at all.

``get`` is safe to cancel: a claim that completes after its caller was
cancelled releases what it leased (uncounted), instead of leaving it
leased until the lease runs out and counting a delivery nobody saw."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from ..config import QueueConfig, default_url, parse_duration
from ..engines.registry import open_engine
from ..errors import ConfigurationError, TidingsError
from ..message import Delivery, Headers, QueueStats
from ..ports.engine import Engine
from ..ports.queue import AsyncConsuming, AsyncPublishing, OutgoingMessage
from ..tracing import ENABLED as TRACING
from ..tracing import inject
from .aio_threads import Threads
from .client import Client
from .queues import batch_messages, outgoing, settlements_by_queue

R = TypeVar("R")


class AsyncQueueMethods:
    """See :class:`~tidings.client.queues.QueueMethods` for each method's contract."""

    _threads: Threads
    _url: str | None
    _engine: Engine | None
    _client: Client | None
    _opening: asyncio.Lock | None

    async def _opened(self) -> Client:
        """The blocking client, opened on a thread the first time; an
        engine on an async driver is opened on this event loop, so that
        what it can be awaited for (AsyncPublishing) needs no thread."""
        if self._client is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._client is None:
                    engine = self._engine or await self._threads.call(
                        open_engine, self._url or default_url(), asyncio.get_running_loop()
                    )
                    self._client = Client(engine=engine)
        return self._client

    async def _direct(self, options: dict[str, Any]) -> AsyncPublishing | None:
        """The engine's queues when a publish can be awaited on them (an
        async driver; not inside the caller's own transaction)."""
        queues = (await self._opened()).engine.queues
        if options.get("connection") is None and isinstance(queues, AsyncPublishing):
            return queues
        return None

    async def _do(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``fn(client, *args, **kwargs)`` on a short-call thread."""
        return await self._threads.call(fn, await self._opened(), *args, **kwargs)

    async def _wait(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``fn(client, ...)`` on a waiting thread."""
        return await self._threads.wait(fn, await self._opened(), *args, **kwargs)

    async def _q(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await self._do(fn, *args, **kwargs)

    async def declare_queue(self, name: str, **options: Any) -> QueueConfig:
        return await self._q(Client.declare_queue, name, **options)

    async def queues(self) -> list[QueueConfig]:
        return await self._q(Client.queues)

    async def queue(self, name: str) -> QueueConfig:
        return await self._q(Client.queue, name)

    async def queue_stats(self, name: str) -> QueueStats:
        return await self._q(Client.queue_stats, name)

    async def purge_queue(self, name: str) -> int:
        return await self._q(Client.purge_queue, name)

    async def delete_queue(self, name: str) -> None:
        await self._q(Client.delete_queue, name)

    async def publish(self, queue: str, body: bytes | str, **options: Any) -> int:
        direct = await self._direct(options)
        if direct is not None:  # awaited here: no thread hop
            return (await direct.apublish(queue, [_one_message(body, **options)]))[0]
        return await self._q(Client.publish, queue, body, **_traced(options))

    async def publish_batch(
        self, queue: str, bodies: Sequence[bytes | str], **options: Any
    ) -> list[int]:
        direct = await self._direct(options)
        if direct is not None:
            return await direct.apublish(queue, _batch_of(bodies, **options))
        return await self._q(Client.publish_batch, queue, bodies, **_traced(options))

    async def get(
        self, queue: str, max_messages: int = 1, wait: float | str = 0, auto_ack: bool = False
    ) -> list[Delivery]:
        """See :meth:`Client.get`; waits run on a waiting thread, so they never
        hold up short calls (on an engine awaited on this loop, on the loop).
        Cancelling it loses nothing."""
        client = await self._opened()
        queues = client.engine.queues
        if isinstance(queues, AsyncConsuming):
            got = await self._claim_here(client, queues, queue, max_messages, wait)
            if auto_ack and got:
                await self.ack(got)
            return got
        claim = self._threads.submit_wait(client.get, queue, max_messages, wait, auto_ack)
        try:
            return await asyncio.wrap_future(claim)
        except asyncio.CancelledError:
            if not auto_ack:
                claim.add_done_callback(lambda f: self._release_late(client, f))
            raise

    def _release_late(self, client: Client, claim: Future[list[Delivery]]) -> None:
        """A claim whose caller was cancelled: put back what it leased."""
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        with contextlib.suppress(RuntimeError):  # the client closed meanwhile: leases expire
            self._threads.submit_call(client.release, claim.result())

    async def _claim_here(
        self, client: Client, queues: AsyncConsuming, queue: str, max_messages: int, wait: Any
    ) -> list[Delivery]:
        """A claim awaited on this loop. Cancelled, it still completes (a
        shielded task) and puts back what it leased, uncounted."""
        claim = asyncio.ensure_future(
            queues.aclaim(queue, max_messages, parse_duration(wait, "wait"))
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            claim.add_done_callback(lambda task: self._release_claimed(client, task))
            raise

    def _release_claimed(self, client: Client, claim: asyncio.Future[list[Delivery]]) -> None:
        if claim.cancelled() or claim.exception() is not None or not claim.result():
            return
        with contextlib.suppress(RuntimeError):  # the client closed meanwhile: leases expire
            self._threads.submit_call(client.release, claim.result())

    async def _settle_here(
        self,
        deliveries: Delivery | Sequence[Delivery],
        action: str,
        delay_s: float = 0.0,
        reason: str = "",
    ) -> bool:
        """Settle awaited on this loop when the engine allows it (False:
        it does not, nothing done). Raises the first failure, as Client does."""
        queues = (await self._opened()).engine.queues
        if not isinstance(queues, AsyncConsuming):
            return False
        errors: list[BaseException] = []
        for queue, batch in settlements_by_queue(deliveries, action, delay_s, reason).items():
            errors += [e for e in await queues.asettle(queue, batch) if e is not None]
        if errors:
            raise errors[0]
        return True

    async def release(self, deliveries: Delivery | Sequence[Delivery]) -> int:
        return await self._q(Client.release, deliveries)

    async def ack(
        self, deliveries: Delivery | Sequence[Delivery], *, connection: Any = None
    ) -> None:
        """See :meth:`Client.ack`. A ``connection`` is used on a worker
        thread (open sqlite3 ones with ``check_same_thread=False``)."""
        if connection is None and await self._settle_here(deliveries, "ack"):
            return
        await self._q(Client.ack, deliveries, connection=connection)

    async def nack(self, deliveries: Delivery | Sequence[Delivery], delay: float | str = 0) -> None:
        if await self._settle_here(deliveries, "nack", parse_duration(delay, "delay")):
            return
        await self._q(Client.nack, deliveries, delay)

    async def reject(
        self, deliveries: Delivery | Sequence[Delivery], reason: str = "rejected"
    ) -> None:
        if await self._settle_here(deliveries, "reject", reason=reason):
            return
        await self._q(Client.reject, deliveries, reason)

    async def extend_lease(self, delivery: Delivery, lease: float | str) -> Delivery:
        return await self._q(Client.extend_lease, delivery, lease)

    async def subscribe(self, queue: str, prefetch: int = 10) -> AsyncGenerator[Delivery, None]:
        """Push-style, as the blocking ``subscribe``: at most ``prefetch``
        leased at a time, one thread hop per batch; deliveries not yet
        yielded are put back uncounted (``release``) when it is closed."""
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
                    await self.release(buffer)

    async def declare_exchange(self, name: str, kind: str = "fanout") -> None:
        await self._q(Client.declare_exchange, name, kind)

    async def bind(self, exchange: str, queue: str, key: str = "", weight: int = 1) -> None:
        await self._q(Client.bind, exchange, queue, key, weight)

    async def bind_topic(self, topic: str, queue: str) -> None:
        await self._q(Client.bind_topic, topic, queue)

    async def publish_to(
        self,
        exchange: str,
        body: bytes | str,
        routing_key: str = "",
        headers: Headers | None = None,
    ) -> dict[str, int]:
        if TRACING:
            headers = inject(headers)
        return await self._q(Client.publish_to, exchange, body, routing_key, headers)

    async def dead_letters(self, queue: str, limit: int = 1000) -> list[Delivery]:
        return await self._q(Client.dead_letters, queue, limit)

    async def redrive(self, queue: str, ids: Sequence[int] | None = None) -> int:
        return await self._q(Client.redrive, queue, ids)

    async def purge_dead_letters(self, queue: str, ids: Sequence[int] | None = None) -> int:
        return await self._q(Client.purge_dead_letters, queue, ids)


def _traced(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the caller's trace context in ``headers``, taken here
    before the thread hop (the worker thread has no current span)."""
    if TRACING:
        headers = inject(options.get("headers"))
        if headers:
            options["headers"] = headers
    return options


def _one_message(
    body: bytes | str,
    *,
    headers: Headers | None = None,
    idempotency_key: str | None = None,
    delay: float | str = 0,
    not_before: Any = None,
    group: str | None = None,
    connection: None = None,
) -> OutgoingMessage:
    return outgoing(body, headers, idempotency_key, delay, not_before, group)


def _batch_of(
    bodies: Sequence[bytes | str],
    *,
    headers: Headers | Sequence[Headers | None] | None = None,
    idempotency_keys: Sequence[str | None] | None = None,
    delay: float | str = 0,
    group: str | None = None,
    groups: Sequence[str | None] | None = None,
    connection: None = None,
) -> list[OutgoingMessage]:
    return batch_messages(bodies, headers, idempotency_keys, delay, group, groups)
