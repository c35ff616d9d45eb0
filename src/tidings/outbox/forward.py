"""Forwarding one batch of outbox events to the engine, through the client.

Events are grouped by destination (in order of first appearance; each
group keeps id order) and each group is one engine call: one append for a
topic, one publish for a queue, each all or nothing. At the first failing
call the batch stops; what is acknowledged is the contiguous prefix of ids
before the first event that was not sent, so a later retry never lets a
key's later event overtake an earlier one.

Every event carries its idempotency key ``outbox:<instance>:<outbox>:<id>``
(the original id for a re-dispatched copy): in the ``x-idempotency-key``
header, and for queues also as the message's native idempotency key (Q3).
"""

from __future__ import annotations

import bisect
import json
from typing import Any

from ..client.client import Client
from ..config import QueueConfig
from ..message import Headers
from ..ports.queue import OutgoingMessage
from .store import EventRow
from .writer import parse_destination

IDEMPOTENCY_HEADER = "x-idempotency-key"


class Forwarder:
    """Sends event rows to topics and queues of one engine."""

    def __init__(self, client: Client, instance: str, outbox: str) -> None:
        self.client = client
        self.prefix = f"outbox:{instance}:{outbox}:"
        # No retry inside the producer: the relay backs off per shard, and a
        # publish must stay shorter than the lease (docs/outbox.md).
        self.producer = client.producer(retry_timeout_s=0)
        self._queues: dict[str, QueueConfig] = {}

    def idempotency_key(self, row: EventRow) -> str:
        return self.prefix + str(row[5] or row[0])

    def _headers(self, row: EventRow) -> Headers:
        key = {IDEMPOTENCY_HEADER: self.prefix + str(row[5] or row[0])}
        return {**json.loads(row[4]), **key} if row[4] else key

    def forward(self, rows: list[EventRow]) -> tuple[int | None, BaseException | None]:
        """Send ``rows`` (id order); (last id of the acknowledged prefix or
        None, the error that stopped the batch or None)."""
        groups: dict[str, list[EventRow]] = {}
        for row in rows:
            groups.setdefault(row[1], []).append(row)
        ordered = list(groups.items())
        for i, (destination, group) in enumerate(ordered):
            try:
                self._send(destination, group)
            except Exception as exc:
                first_unsent = min(g[0][0] for _, g in ordered[i:])
                return _prefix_end(rows, first_unsent), exc
        return rows[-1][0], None

    def _send(self, destination: str, rows: list[EventRow]) -> None:
        kind, name = parse_destination(destination)
        if kind == "topic":
            self.producer.send_batch(
                name, [r[3] for r in rows], [r[2] for r in rows], [self._headers(r) for r in rows]
            )
        else:
            self._publish(name, rows)

    def _publish(self, queue: str, rows: list[EventRow]) -> None:
        fifo = self._queue(queue).fifo
        messages = [
            OutgoingMessage(
                r[3], self._headers(r), self.idempotency_key(r), 0.0, None, _group(r[2], fifo)
            )
            for r in rows
        ]
        # Client.publish_batch takes no per-message idempotency keys: the
        # engine port does (and is what publish_batch calls).
        self.client.engine.queues.publish(queue, messages)

    def _queue(self, name: str) -> QueueConfig:
        config = self._queues.get(name)
        if config is None:
            config = self._queues[name] = self.client.queue(name)
        return config

    def close(self) -> None:
        self.producer.close()


def _group(key: Any, fifo: bool) -> str | None:
    """On a FIFO queue the event's key is its group (Q4: order per key)."""
    if not fifo or key is None:
        return None
    return bytes(key).decode("utf-8", "backslashreplace")


def _prefix_end(rows: list[EventRow], first_unsent: int) -> int | None:
    ids = [r[0] for r in rows]
    i = bisect.bisect_left(ids, first_unsent)
    return ids[i - 1] if i else None
