"""Publishing one message to a queue with a publisher confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiormq

from ...config import QueueConfig
from ...errors import EngineError, QueueFull, QueueNotFound
from . import confirmed
from .link import DROPPED, Dropped, Link
from .refusals import too_large

_PUBLISH_ATTEMPTS = 5
_PUBLISH_DROPS = 10  # connections lost while one publish waits for its confirm


async def publish(
    link: Link, configs: Mapping[str, QueueConfig], queue: str, body: bytes,
    headers: dict[str, Any], id: int,
) -> None:
    """Publish and wait for the confirm; resend on a nack or a dropped
    connection (at-least-once: a resent message may be stored twice). Waiting
    for a reconnect is bounded by the link (EngineUnavailable). Raises
    QueueNotFound, QueueFull, RecordTooLarge, EngineError."""
    attempt = drops = 0
    while True:
        channel = None
        try:
            channel = await link.publisher()
            await confirmed.publish(channel, queue, body, headers, id)
            return
        except aiormq.exceptions.PublishError as exc:
            raise QueueNotFound(f"queue {queue!r} does not exist: declare it first") from exc
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            # A server with a lower max_message_size than ours closed the
            # publishing channel (no lease is held on it).
            await link.reset_publisher(channel)
            if "message size" in str(exc):
                raise too_large(len(body), queue) from exc
            raise EngineError(f"RabbitMQ refused a publish to {queue!r}: {exc}") from exc
        except aiormq.exceptions.DeliveryError as exc:
            attempt += 1
            if attempt == _PUBLISH_ATTEMPTS:
                raise _refused(configs, queue, exc) from exc
            await link.reset_publisher(channel)  # the next attempt on a new one
            await asyncio.sleep(0.05 * 2**attempt)
        except DROPPED as exc:
            drops += 1
            if drops > _PUBLISH_DROPS:
                raise Dropped(
                    f"the connection to RabbitMQ dropped {drops} times while publishing "
                    f"to {queue!r}: retry later"
                ) from exc
            await link.reset_publisher(channel)  # the next one waits for the reconnect


def _refused(configs: Mapping[str, QueueConfig], queue: str, exc: Exception) -> Exception:
    config = configs.get(queue)
    if config is not None and config.max_length is not None:
        return QueueFull(
            f"queue {queue!r} is at its max_length {config.max_length}: consume or purge it"
        )
    return EngineError(f"RabbitMQ refused a publish to {queue!r} ({exc}): retry later")
