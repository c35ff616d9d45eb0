"""Leases on deliveries: RabbitMQ keeps a message unacked as long as the
channel lives, so the visibility timeout is emulated by a timer on the
engine's loop that returns the message when the lease runs out (if the
process dies, the channel closes and RabbitMQ returns it at once).

Leases ending in the same ``_BUCKET_S`` share one timer (a claim of 100
leases 100 messages at once: one timer, not 100), so a lease may run up to
``_BUCKET_S`` longer than asked; ``until_ms`` says when it really ends.
Receipts are a per-instance counter (they name a lease in this process, they
are not secrets)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import AlreadySettled, LeaseLost
from .pushed import Pushed

_ENDED_KEPT = 100_000  # receipts remembered after their lease ended
_BUCKET_S = 0.01  # leases ending within this share a timer


@dataclass
class Lease:
    queue: str
    id: int
    message: Pushed
    count: int
    generation: int
    until_ms: int
    bucket: int = field(default=0, repr=False)  # which shared timer ends it


class Leases:
    """Live leases by receipt, and how recently ended ones ended."""

    def __init__(self, on_expiry: Callable[[Lease], Any]) -> None:
        self._live: dict[str, Lease] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._on_expiry = on_expiry
        self._receipts = itertools.count(1)
        # bucket -> (its timer, the receipts armed in it)
        self._buckets: dict[int, tuple[asyncio.TimerHandle, list[str]]] = {}

    def add(self, lease: Lease, lease_s: float) -> str:
        receipt = f"{next(self._receipts):x}"
        self._live[receipt] = lease
        self._arm(receipt, lease, lease_s)
        return receipt

    def _arm(self, receipt: str, lease: Lease, lease_s: float) -> None:
        """End ``lease`` at the end of the bucket ``lease_s`` from now falls in."""
        now_wall, now_loop = time.time(), asyncio.get_running_loop().time()
        bucket = math.ceil((now_loop + lease_s) / _BUCKET_S)
        lease.bucket = bucket
        lease.until_ms = int((now_wall + bucket * _BUCKET_S - now_loop) * 1000)
        if bucket not in self._buckets:
            loop = asyncio.get_running_loop()
            timer = loop.call_at(bucket * _BUCKET_S, self._expire, bucket)
            self._buckets[bucket] = (timer, [])
        self._buckets[bucket][1].append(receipt)

    def _expire(self, bucket: int) -> None:
        _, receipts = self._buckets.pop(bucket, (None, []))
        for receipt in receipts:
            lease = self._live.get(receipt)
            if lease is None or lease.bucket != bucket:  # settled, or extended since
                continue
            self.end(receipt, "expired")
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

    def close(self) -> None:
        """End every lease without returning anything (the channel is closing)."""
        for receipt in list(self._live):
            self.end(receipt, "expired")
        for timer, _ in self._buckets.values():
            timer.cancel()
        self._buckets.clear()
