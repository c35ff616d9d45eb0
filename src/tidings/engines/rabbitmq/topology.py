"""Queues as RabbitMQ declares them: quorum queues with native arguments,
tidings' settings kept in a one-message catalog queue beside each queue (AMQP
cannot read a queue's arguments back), and durable per-delay queues."""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from dataclasses import asdict
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel

from ...config import QueueConfig
from ...errors import QueueNotFound, TidingsError
from .headers import DELAY_INFIX
from .link import Link, persistent
from .refusals import declare_refused

CATALOG_SUFFIX = ".tidings-config"
#: A per-delay queue lives this long after its last use (after every message
#: in it was due: its messages expire after the delay, it after delay + this).
DELAY_QUEUE_IDLE_MS = 600_000


def arguments(config: QueueConfig) -> dict[str, Any]:
    """The x-arguments mapping what RabbitMQ does natively."""
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if config.max_deliveries is not None:
        # A backstop: tidings dead-letters at max_deliveries itself (with our
        # headers); RabbitMQ's limit only catches returns tidings never saw
        # (consumers that crashed).
        args["x-delivery-limit"] = config.max_deliveries
    args["x-dead-letter-exchange"] = ""  # never dropped: <name>.dlq when none is set
    args["x-dead-letter-routing-key"] = config.dead_letter_queue
    if config.ttl_s is not None:
        args["x-message-ttl"] = max(1, round(config.ttl_s * 1000))
    if config.max_length is not None:
        args["x-max-length"] = config.max_length
        args["x-overflow"] = "reject-publish" if config.overflow == "reject" else "drop-head"
    return args


def encode(config: QueueConfig) -> bytes:
    return json.dumps(asdict(config), sort_keys=True).encode()


def decode(body: bytes) -> QueueConfig:
    return QueueConfig(**json.loads(body))


async def read_config(link: Link, name: str) -> QueueConfig | None:
    """The settings stored for ``name``, or None if it was never declared.
    Reading takes the catalog message and returns it at once: another
    reader meanwhile finds the catalog empty and asks again."""
    async with link.scratch() as channel:
        try:
            catalog = await channel.declare_queue(companion(name, CATALOG_SUFFIX), passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        for _ in range(_READ_ATTEMPTS):
            message = await catalog.get(no_ack=False, fail=False)
            if message is not None:
                body = message.body
                await message.nack(requeue=True)
                return decode(body)
            await asyncio.sleep(0.01)
    return None


_READ_ATTEMPTS = 50  # 10 ms apart: a reader holds the message for about 1 ms


async def create(link: Link, config: QueueConfig) -> None:
    """Declare the queue, then record its settings: both or neither. A refused
    declaration records nothing (AlreadyExists naming the argument,
    ConfigurationError without permissions), and a queue this call created is
    deleted again if its settings cannot be recorded."""
    existed = await exists(link, config.name)
    try:
        async with link.scratch() as channel:
            await declare(channel, config.name, arguments(config))
            catalog = companion(config.name, CATALOG_SUFFIX)
            await declare(channel, catalog, _CATALOG_ARGS)
            await channel.default_exchange.publish(
                persistent(encode(config), {}, 0), routing_key=catalog
            )
    except BaseException:
        if not existed:
            await _drop(link, config.name)
        raise


_CATALOG_ARGS = {"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "drop-head"}


async def declare(channel: AbstractChannel, name: str, args: dict[str, Any]) -> None:
    """A durable queue declaration; RabbitMQ's refusal as a tidings error."""
    try:
        await channel.declare_queue(name, durable=True, arguments=args)
    except aiormq.exceptions.ChannelClosed as exc:
        raise declare_refused(exc, "queue", name) from exc


async def exists(link: Link, name: str) -> bool:
    async with link.scratch() as channel:
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
    return True


async def _drop(link: Link, name: str) -> None:
    """Delete a queue this engine just created (best effort: the channel
    that failed is gone, the connection may be too)."""
    try:
        async with link.scratch() as channel:
            await channel.queue_delete(name)
    except Exception:  # the original error says more; a leftover empty queue is harmless
        pass


async def redeclare(link: Link, configs: list[QueueConfig]) -> None:
    """After a reconnect: declare these queues again (a no-op where they
    survived, as quorum queues do while a majority of their nodes lives)."""
    for config in configs:
        with contextlib.suppress(TidingsError):  # declared elsewhere with other arguments
            async with link.scratch() as channel:
                await channel.declare_queue(
                    config.name, durable=True, arguments=arguments(config)
                )


async def remove(link: Link, name: str, delay_queues: list[str]) -> None:
    """Delete the queue, its catalog entry and its delay queues."""
    async with link.scratch() as channel:
        for queue in (name, companion(name, CATALOG_SUFFIX), *delay_queues):
            await channel.queue_delete(queue)


async def ready_count(channel: AbstractChannel, name: str) -> int:
    """Messages ready in ``name`` (passive declare). Raises QueueNotFound."""
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity as exc:
        raise QueueNotFound(f"queue {name!r} does not exist: declare it first") from exc
    result = queue.declaration_result
    return int(result.message_count or 0)


def delay_queue(queue: str, delay_ms: int) -> tuple[str, dict[str, Any]]:
    """The durable queue holding ``queue``'s messages delayed by ``delay_ms``:
    each expires after the delay and RabbitMQ dead-letters it back to
    ``queue``. One delay per queue, so expiry at the head is in due order."""
    return companion(queue, f"{DELAY_INFIX}{delay_ms}"), {
        "x-queue-type": "classic",
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-expires": delay_ms + DELAY_QUEUE_IDLE_MS,
    }


_MAX_AMQP_NAME = 255  # bytes (UTF-8): RabbitMQ refuses longer queue names


def companion(queue: str, suffix: str) -> str:
    """The name of a queue that goes with ``queue`` (its catalog entry, a
    delay queue): ``queue + suffix``, or, where that passes RabbitMQ's
    255-byte limit, ``queue`` shortened and made unique by a hash of it."""
    name = queue + suffix
    if len(name.encode()) <= _MAX_AMQP_NAME:
        return name
    digest = f".{zlib.crc32(queue.encode()):08x}"
    keep = _MAX_AMQP_NAME - len((digest + suffix).encode())
    return queue.encode()[:keep].decode(errors="ignore") + digest + suffix
