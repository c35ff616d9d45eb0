"""The connection to RabbitMQ: one main channel (publisher confirms, leases)
and short-lived channels for operations that may fail (a failed declare
closes its channel). Runs on the portal's loop only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from ...errors import (
    AlreadyExists,
    ConfigurationError,
    EngineError,
    EngineUnavailable,
    QueueNotFound,
)

#: Errors after which the connection is reopened and an unconfirmed publish resent.
DROPPED = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    asyncio.IncompleteReadError,
)


class Link:
    """Opens lazily, reopens after a drop (leases held on the old channel end)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self.generation = 0  # bumped on each reconnect: older receipts are lost

    async def channel(self) -> AbstractChannel:
        """The main channel, (re)opened if needed. Raises EngineUnavailable."""
        if self._channel is None or self._channel.is_closed:
            await self._open()
        assert self._channel is not None
        return self._channel

    async def _open(self) -> None:
        if self._connection is None or self._connection.is_closed:
            try:
                self._connection = await aio_pika.connect(self.url, timeout=10)
            except (OSError, aiormq.exceptions.AMQPError, *DROPPED) as exc:  # a refused vhost too
                raise EngineUnavailable(
                    f"cannot connect to RabbitMQ at {_safe(self.url)}: {exc} "
                    "(is the server running and the user allowed on this vhost?)"
                ) from exc
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self.generation += 1

    async def reset(self) -> None:
        """Forget the main channel (after a drop): the next call reopens."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except Exception:  # already broken; we reopen anyway
                pass

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[AbstractChannel]:
        """A channel of its own for one operation; AMQP errors become typed ones."""
        await self.channel()
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield channel
        except aiormq.exceptions.ChannelClosed as exc:
            raise typed(exc) from exc
        finally:
            if not channel.is_closed:
                await channel.close()

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()


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


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def persistent(body: bytes, headers: dict[str, Any], message_id: int) -> aio_pika.Message:
    """A persistent AMQP message carrying tidings' id."""
    return aio_pika.Message(
        body,
        headers=headers,
        message_id=str(message_id),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
