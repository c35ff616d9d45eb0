"""Leases on deliveries: RabbitMQ keeps a message unacked as long as the
channel lives, so the visibility timeout is emulated by a timer on the
engine's loop that returns the message when the lease runs out (if the
process dies, the channel closes and RabbitMQ returns it at once)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ...errors import AlreadySettled, LeaseLost

_ENDED_KEPT = 100_000  # receipts remembered after their lease ended


@dataclass
class Lease:
    queue: str
    id: int
    message: AbstractIncomingMessage
    count: int
    generation: int
    until_ms: int
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Leases:
    """Live leases by receipt, and how recently ended ones ended."""

    def __init__(self, on_expiry: Callable[[Lease], Any]) -> None:
        self._live: dict[str, Lease] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._on_expiry = on_expiry

    def add(self, lease: Lease, lease_s: float) -> str:
        receipt = uuid.uuid4().hex
        self._live[receipt] = lease
        self._arm(receipt, lease, lease_s)
        return receipt

    def _arm(self, receipt: str, lease: Lease, lease_s: float) -> None:
        if lease.timer is not None:
            lease.timer.cancel()
        lease.until_ms = int((time.time() + lease_s) * 1000)
        loop = asyncio.get_running_loop()
        lease.timer = loop.call_later(lease_s, self._expire, receipt)

    def _expire(self, receipt: str) -> None:
        lease = self.end(receipt, "expired")
        if lease is not None:
            self._on_expiry(lease)

    def take(self, receipt: str) -> Lease:
        """End a live lease for settling. Raises LeaseLost / AlreadySettled."""
        lease = self.end(receipt, "settled")
        if lease is None:
            raise self.why_gone(receipt)
        return lease

    def extend(self, receipt: str, lease_s: float) -> int:
        lease = self._live.get(receipt)
        if lease is None:
            raise self.why_gone(receipt)
        self._arm(receipt, lease, lease_s)
        return lease.until_ms

    def end(self, receipt: str, how: str) -> Lease | None:
        lease = self._live.pop(receipt, None)
        if lease is None:
            return None
        if lease.timer is not None:
            lease.timer.cancel()
        self._ended[receipt] = how
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        return lease

    def why_gone(self, receipt: str) -> Exception:
        if self._ended.get(receipt) == "settled":
            return AlreadySettled("this delivery was already acked, nacked or rejected")
        return LeaseLost(
            "the lease on this delivery ended (it ran out, or the connection to RabbitMQ "
            "dropped); the message will be redelivered"
        )

    def of_queue(self, queue: str) -> list[str]:
        return [r for r, lease in self._live.items() if lease.queue == queue]

    def drop_generation_before(self, generation: int) -> None:
        """Leases held on a channel that is gone: RabbitMQ returned them."""
        for receipt, lease in list(self._live.items()):
            if lease.generation < generation:
                self.end(receipt, "expired")
