"""Checks and header changes on outgoing and settled messages (the queue side)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...config import QueueConfig
from ...errors import RecordTooLarge
from ...ports.queue import OutgoingMessage
from . import headers as hdr
from .fifo import lanes
from .leases import Lease
from .refusals import MAX_MESSAGE_BYTES, too_large


def uncounted(lease: Lease) -> dict[str, Any]:
    """A released message's headers: the deliveries before this one."""
    amqp = hdr.carried(lease.message.headers or {})
    amqp[hdr.PRIOR] = lease.count - 1
    return amqp


def last(config: QueueConfig, lease: Lease) -> bool:
    return config.max_deliveries is not None and lease.count >= config.max_deliveries


def check(config: QueueConfig, messages: Sequence[OutgoingMessage]) -> None:
    """Refuse the whole batch before anything is sent (nothing stored half)."""
    for m in messages:
        if len(m.body) > config.max_body_bytes:
            raise RecordTooLarge(
                f"message of {len(m.body)} bytes exceeds queue {config.name!r}'s "
                f"max_body_bytes {config.max_body_bytes}"
            )
        if len(m.body) > MAX_MESSAGE_BYTES:
            raise too_large(len(m.body), config.name)


def delay_ms(m: OutgoingMessage) -> int:
    if m.not_before_ms is not None:
        return max(0, m.not_before_ms - int(time.time() * 1000))
    return max(0, round(m.delay_s * 1000))


def dead_letters_natively(config: QueueConfig) -> bool:
    """True if RabbitMQ itself may dead-letter from this queue (see topology)."""
    return (
        config.ttl_s is not None
        or config.max_deliveries is not None
        or (config.max_length is not None and config.overflow != "reject")
    )


def stored_in(config: QueueConfig) -> list[str]:
    """The RabbitMQ queues holding ``config``'s ready messages."""
    return [config.name, *lanes(config.name)] if config.fifo else [config.name]
