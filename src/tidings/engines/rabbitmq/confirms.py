"""Publishing one message to a queue with a publisher confirm."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiormq

from ...config import QueueConfig
from ...errors import EngineError, QueueFull, QueueNotFound
from . import confirmed
from .link import DROPPED, Link
from .refusals import too_large

_PUBLISH_ATTEMPTS = 5


async def publish(
    link: Link, configs: Mapping[str, QueueConfig], queue: str, body: bytes,
    headers: dict[str, Any], id: int,
) -> None:
    """Publish and wait for the confirm; resend on a nack or a dropped
    connection (at-least-once). Raises QueueNotFound, QueueFull, EngineError."""
    for attempt in range(_PUBLISH_ATTEMPTS):
        try:
            await confirmed.publish(await link.channel(), queue, body, headers, id)
            return
        except aiormq.exceptions.PublishError as exc:
            raise QueueNotFound(f"queue {queue!r} does not exist: declare it first") from exc
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            # A server with a lower max_message_size than ours closed the
            # main channel (its leases are gone: RabbitMQ returns them).
            await link.reset()
            if "message size" in str(exc):
                raise too_large(len(body), queue) from exc
            raise EngineError(f"RabbitMQ refused a publish to {queue!r}: {exc}") from exc
        except aiormq.exceptions.DeliveryError as exc:
            if attempt == _PUBLISH_ATTEMPTS - 1:
                raise _refused(configs, queue, exc) from exc
        except DROPPED:
            await link.reset()
        await asyncio.sleep(0.05 * 2**attempt)
    raise EngineError(f"RabbitMQ did not confirm a publish to {queue!r}: retry later")


def _refused(configs: Mapping[str, QueueConfig], queue: str, exc: Exception) -> Exception:
    config = configs.get(queue)
    if config is not None and config.max_length is not None:
        return QueueFull(
            f"queue {queue!r} is at its max_length {config.max_length}: consume or purge it"
        )
    return EngineError(f"RabbitMQ refused a publish to {queue!r} ({exc}): retry later")
