"""The returns desk: competing workers on the ``returns`` work queue.

Each refund request (queued by a cancellation, through the outbox) is
leased by one of the workers and acked once refunded. A refund that cannot
be automated — the booking was paid with a voucher — is rejected: the
queue moves it to its dead-letter queue ``returns.dlq`` with the reason,
for a person to look at (``tidings dlq list returns``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable

from tidings import Client
from tidings.message import Delivery

Say = Callable[[str, str], None]


def declare(client: Client) -> None:
    """The queue, with a dead-letter queue and redelivery after 5 tries."""
    client.declare_queue("returns", lease="10s", max_deliveries=5, dead_letter="returns.dlq")


class ReturnsDesk:
    """``workers`` threads, each with its own client (as separate processes
    would have), competing for the same queue."""

    def __init__(self, bus_url: str, say: Say, workers: int = 3) -> None:
        self.say = say
        self.lock = threading.Lock()
        self.refunded: Counter[str] = Counter()  # booking id -> refunds paid
        self.rejected: list[str] = []
        self.by_worker: Counter[str] = Counter()
        self.stop = threading.Event()
        self.clients = [Client(bus_url) for _ in range(workers)]
        self.threads = [
            threading.Thread(target=self._work, args=(f"worker-{n}", c), name=f"worker-{n}")
            for n, c in enumerate(self.clients, 1)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _work(self, worker: str, client: Client) -> None:
        while not self.stop.is_set():
            for delivery in client.get("returns", max_messages=2, wait=0.1):
                self._handle(worker, client, delivery)

    def _handle(self, worker: str, client: Client, delivery: Delivery) -> None:
        refund = json.loads(delivery.body)
        booking = refund["booking"]
        if refund["paid_with"] == "voucher":
            client.reject(delivery, reason="voucher payments cannot be refunded automatically")
            with self.lock:
                self.rejected.append(booking)
            self.say("returns", f"{worker}: refund for {booking} paid by voucher: dead-lettered")
            return
        with self.lock:
            if not self.refunded[booking]:  # a redelivery after a lost ack pays nothing
                self.refunded[booking] += 1
                self.by_worker[worker] += 1
        client.ack(delivery)

    def settled(self) -> int:
        """Refund requests refunded or rejected so far."""
        with self.lock:
            return len(self.refunded) + len(self.rejected)

    def close(self) -> None:
        """Stop the workers (a lease they hold comes back to the queue)."""
        self.stop.set()
        for t in self.threads:
            if t.ident is not None:
                t.join()
        for c in self.clients:
            c.close()
