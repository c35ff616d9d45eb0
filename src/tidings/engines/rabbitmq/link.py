"""The connection to RabbitMQ: one main channel (publisher confirms, leases)
and short-lived channels for operations that may fail (a failed declare
closes its channel). Runs on the portal's loop only.

Failover: the URL may list several nodes (addresses.py). The first connect
tries each once and fails fast. When an open connection drops, a
background task reconnects at once, to the node after the one that dropped,
then round after round with full-jitter backoff (backoff.py) until a node
answers; calls made meanwhile wait for it up to ``reconnect_s``, then raise
EngineUnavailable naming the nodes tried. Each new channel bumps
``generation``: leases (delivery tags) of an older one are lost, never
acked on the new channel; RabbitMQ redelivers those messages itself.
After a reconnect the registered restorers run (topology, consumers)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from ...backoff import Backoff
from ...errors import (
    AccessRefused,
    AlreadyExists,
    ConfigurationError,
    EngineError,
    EngineUnavailable,
    QueueNotFound,
)
from .addresses import Address, parse

T = TypeVar("T")

#: Errors after which the connection is reopened and an unconfirmed publish resent.
DROPPED = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    asyncio.IncompleteReadError,
)
CONNECT_S = 10.0  # per node and attempt
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.05, 2.0  # between rounds over every node

Restorer = Callable[[], Awaitable[None]]


class Dropped(EngineUnavailable):
    """The connection dropped during the call (it may or may not have taken
    effect); the client is reconnecting: retry it."""


class Link:
    """Opens lazily, reopens after a drop (leases held on the old channel end)."""

    def __init__(self, url: str, reconnect_s: float = 15.0) -> None:
        self.addresses: list[Address] = parse(url)
        self.reconnect_s = reconnect_s
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._publisher: AbstractChannel | None = None
        self._publisher_opening = asyncio.Lock()
        self.generation = 0  # bumped on each new main channel: older receipts are lost
        self.node: str | None = None  # the node connected to (host:port)
        self._next = 0  # the address tried first
        self._opening: asyncio.Task[None] | None = None
        self._failure: EngineUnavailable | None = None  # the last round's, for messages
        self._down_since: float | None = None
        self.outages: list[float] = []  # seconds from each drop to the next open channel
        self._restorers: list[Restorer] = []
        self._closing = False

    def on_reopen(self, restorer: Restorer) -> None:
        """Run ``restorer`` after each reconnect (re-declare, re-consume)."""
        self._restorers.append(restorer)

    async def channel(self) -> AbstractChannel:
        """The main channel, (re)opened if needed. Raises EngineUnavailable
        (after ``reconnect_s`` while reconnecting), AccessRefused."""
        deadline: float | None = None
        while True:
            channel = self._channel
            if channel is not None and not channel.is_closed:
                return channel
            if self._closing:
                raise EngineError("the RabbitMQ engine is closed: open a new Client")
            first = self.generation == 0  # the first connect: one round, fails fast
            if deadline is None and not first:
                deadline = time.monotonic() + self.reconnect_s
            task = self._opening or self._start(rounds=1 if first else None)
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(asyncio.shield(task), remaining)
            except TimeoutError:
                raise EngineUnavailable(self._unreachable(waited=True)) from self._failure

    async def publisher(self) -> AbstractChannel:
        """The channel publishes go on (confirms), apart from the leases'
        channel so that :meth:`reset_publisher` costs no lease."""
        await self.channel()
        async with self._publisher_opening:  # one channel for concurrent sends: kept in order
            publisher = self._publisher
            if publisher is None or publisher.is_closed:
                publisher = self._publisher = await self._new_channel()
        return publisher

    async def _new_channel(self) -> AbstractChannel:
        """A channel on the current connection. Raises one of DROPPED if it is lost."""
        connection = self._connection
        if connection is None or not _usable(connection):
            raise aiormq.exceptions.ChannelInvalidStateError("the connection to RabbitMQ dropped")
        try:
            return await connection.channel(publisher_confirms=True, on_return_raises=True)
        except aiormq.exceptions.ChannelInvalidStateError:
            raise
        except RuntimeError as exc:  # aio-pika: "<Connection ...> closed", a drop not yet seen
            raise aiormq.exceptions.ChannelInvalidStateError(str(exc)) from exc

    async def reset_publisher(self, failed: AbstractChannel | None) -> None:
        """Close the publishing channel after a nack: RabbitMQ 3.10 keeps
        nacking every publish on a channel that first sent to a quorum queue
        while it had no leader (measured: 25 s and on after a failover, while
        a new channel on the same connection is acked)."""
        if failed is None or failed is not self._publisher:
            return
        self._publisher = None
        if not failed.is_closed:
            with contextlib.suppress(Exception):
                await failed.close()

    def _start(self, rounds: int | None) -> asyncio.Task[None]:
        task = asyncio.ensure_future(self._open(rounds))
        self._opening = task
        task.add_done_callback(self._opened)
        return task

    def _opened(self, task: asyncio.Task[None]) -> None:
        if self._opening is task:
            self._opening = None
        if not task.cancelled():
            task.exception()  # retrieved: its waiters got it, or nobody was waiting

    async def _open(self, rounds: int | None) -> None:
        """Until a main channel is open: a connection to some node first.
        Raises EngineUnavailable after ``rounds`` failed rounds, AccessRefused."""
        backoff = Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S)
        failed = 0
        while not self._closing:
            if _usable(self._connection):
                if await self._open_channel():
                    return
                continue  # dropped while restoring: reconnect at once
            errors = await self._connect_round()
            if not errors:
                continue
            failed += 1
            self._failure = EngineUnavailable(self._unreachable(errors=errors))
            if rounds is not None and failed >= rounds:
                raise self._failure
            await asyncio.sleep(backoff.next())
        raise EngineError("the RabbitMQ engine is closed: open a new Client")

    async def _connect_round(self) -> list[str]:
        """Try each node once, from ``_next``; the errors if none answered."""
        errors: list[str] = []
        n = len(self.addresses)
        for i in range(n):
            index = (self._next + i) % n
            address = self.addresses[index]
            try:
                connection = await aio_pika.connect(address.url, timeout=CONNECT_S)
            except aiormq.exceptions.ProbableAuthenticationError as exc:
                raise AccessRefused(
                    f"RabbitMQ at {address.name} refused the login (ACCESS_REFUSED): "
                    "check the user and password in the URL"
                ) from exc
            except aiormq.exceptions.InvalidFrameError as exc:
                # Connection.Close instead of OpenOk: the vhost was refused.
                raise AccessRefused(
                    f"RabbitMQ at {address.name} refused to open the vhost ({exc}): check "
                    "that it exists and that the user is allowed on this vhost"
                ) from exc
            except (OSError, TimeoutError, *DROPPED) as exc:
                errors.append(f"{address.name}: {exc or type(exc).__name__}")
                continue
            self._next = index
            self._connection = connection
            connection.close_callbacks.add(self._on_close)
            return []
        return errors

    async def _open_channel(self) -> bool:
        """Open the main channel (restoring after a reconnect); False if the
        connection dropped meanwhile."""
        assert self._connection is not None
        try:
            channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        except (*DROPPED, RuntimeError):  # aio-pika: "<Connection ...> closed"
            await self._forget_connection()
            await asyncio.sleep(BACKOFF_BASE_S)  # a node that accepts, then drops
            return False
        self._channel = channel
        self.generation += 1
        self.node = self.addresses[self._next].name
        if self._down_since is not None:
            self.outages.append(time.monotonic() - self._down_since)
            self._down_since = None
            await self._restore()
        return not channel.is_closed

    async def _restore(self) -> None:
        """Re-declare and re-consume; a drop meanwhile is a new outage
        (its close callback starts the next reconnect)."""
        for restorer in list(self._restorers):
            with contextlib.suppress(Exception):  # best effort: it must not stop the reconnect
                await restorer()

    def _on_close(self, connection: Any, exc: BaseException | None) -> None:
        """The connection closed: unless we closed it, reconnect now, to the next node."""
        if connection is not self._connection or self._closing:
            return
        self._down_since = time.monotonic()
        self._next = (self._next + 1) % len(self.addresses)
        self._channel = self._publisher = None
        if self._opening is None:
            self._start(rounds=None)

    async def _forget_connection(self) -> None:
        """Drop a connection found broken (before or without its close callback)."""
        connection, self._connection = self._connection, None
        self._channel = self._publisher = None
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._next = (self._next + 1) % len(self.addresses)
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):  # already broken; we reconnect anyway
                await connection.close()

    def _unreachable(self, errors: list[str] | None = None, waited: bool = False) -> str:
        names = ", ".join(a.name for a in self.addresses)
        if waited:
            down = time.monotonic() - (self._down_since or time.monotonic())
            last = f"; last attempt: {self._failure}" if self._failure else ""
            return (
                f"RabbitMQ unreachable: reconnecting for {down:.1f}s to {names}, this call "
                f"waited {self.reconnect_s:g}s (URL option reconnect_timeout){last}"
            )
        return (
            f"cannot connect to RabbitMQ at any of {names} ({'; '.join(errors or [])}): "
            "is the server running there and listening on that port?"
        )

    async def reset(self) -> None:
        """Forget the main channel (RabbitMQ closed it on an error): the
        next call opens a new one (its leases are lost: a new generation)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):  # already broken; we reopen anyway
                await channel.close()

    async def guard(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro``; a drop it did not handle becomes :class:`Dropped`."""
        try:
            return await coro
        except DROPPED as exc:
            raise Dropped(
                f"the connection to RabbitMQ at {self.node} dropped during this call "
                f"({exc or type(exc).__name__}); reconnecting to "
                f"{', '.join(a.name for a in self.addresses)}: retry the call"
            ) from exc

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[AbstractChannel]:
        """A channel of its own for one operation; AMQP errors become typed ones."""
        await self.channel()
        channel = await self._new_channel()
        try:
            yield channel
        except aiormq.exceptions.ChannelClosed as exc:
            raise typed(exc) from exc
        finally:
            if not channel.is_closed:
                with contextlib.suppress(*DROPPED):
                    await channel.close()

    async def close(self) -> None:
        self._closing = True
        if self._opening is not None:
            self._opening.cancel()
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


def _usable(connection: AbstractConnection | None) -> bool:
    """Open and not lost (``is_closed`` stays False after a drop in aio-pika 10)."""
    return connection is not None and connection.connected.is_set() and not connection.is_closed


def typed(exc: Exception) -> Exception:
    """The tidings error for an AMQP channel error."""
    text = str(exc)
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return QueueNotFound(f"RabbitMQ: {text}: declare it first")
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        return AlreadyExists(
            f"RabbitMQ refused the declaration ({text}): the queue or exchange exists with "
            "other arguments (declared by someone else?); delete it or use its settings"
        )
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return ConfigurationError(
            f"RabbitMQ refused access ({text}): grant the user permissions on this vhost"
        )
    return EngineError(f"RabbitMQ: {text}")


def persistent(body: bytes, headers: dict[str, Any], message_id: int) -> aio_pika.Message:
    """A persistent AMQP message carrying tidings' id."""
    return aio_pika.Message(
        body,
        headers=headers,
        message_id=str(message_id),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
