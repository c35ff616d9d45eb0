"""Forwarding one batch of outbox events to the engine, through the client.

Each run of consecutive events with the same destination is one engine
call: one append for a topic, one publish for a queue, each all or nothing.
At the first failing call the batch stops; what is acknowledged is the
prefix before it, so a later retry never lets a later event overtake an
earlier one (not even across destinations: an outbox whose events
alternate between destinations forwards in smaller calls).

Every event carries its idempotency key ``outbox:<instance>:<outbox>:<id>``
(the original id for a re-dispatched copy): in the ``x-idempotency-key``
header, and for queues also as the message's native idempotency key (Q3)
where the engine deduplicates (``Features.dedup``); on one that does not
(``amqp://``) the header alone carries it and forwarding is at-least-once.
"""

from __future__ import annotations

import json
from typing import Any

from ..client.client import Client
from ..config import QueueConfig
from ..message import Headers
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
        self._dedup = client.features.supports("dedup")

    def idempotency_keys(self, rows: list[EventRow]) -> list[str]:
        prefix = self.prefix
        return [prefix + str(r[5] or r[0]) for r in rows]

    def _headers(self, rows: list[EventRow], keys: list[str]) -> list[Headers]:
        if not any(r[4] for r in rows):  # the common case: no headers of its own
            return [{IDEMPOTENCY_HEADER: k} for k in keys]
        return [
            {**json.loads(r[4]), IDEMPOTENCY_HEADER: k} if r[4] else {IDEMPOTENCY_HEADER: k}
            for r, k in zip(rows, keys, strict=True)
        ]

    def forward(self, rows: list[EventRow]) -> tuple[int | None, BaseException | None]:
        """Send ``rows`` (id order); (last id of the acknowledged prefix or
        None, the error that stopped the batch or None)."""
        acked = None
        for destination, run in _runs(rows):
            try:
                self._send(destination, run)
            except Exception as exc:
                return acked, exc
            acked = run[-1][0]
        return acked, None

    def _send(self, destination: str, rows: list[EventRow]) -> None:
        kind, name = parse_destination(destination)
        if kind == "topic":
            # Two columns by comprehension: zip(*rows) would build all six.
            keys, values = [r[2] for r in rows], [r[3] for r in rows]
            headers = self._headers(rows, self.idempotency_keys(rows))
            self.producer.send_batch(name, values, keys, headers)
        else:
            self._publish(name, rows)

    def _publish(self, queue: str, rows: list[EventRow]) -> None:
        fifo = self._queue(queue).fifo
        keys = self.idempotency_keys(rows)
        self.client.publish_batch(
            queue,
            [r[3] for r in rows],
            headers=self._headers(rows, keys),
            idempotency_keys=keys if self._dedup else None,
            groups=[_group(r[2]) for r in rows] if fifo else None,
        )

    def _queue(self, name: str) -> QueueConfig:
        config = self._queues.get(name)
        if config is None:
            config = self._queues[name] = self.client.queue(name)
        return config

    def close(self) -> None:
        self.producer.close()


def _group(key: Any) -> str | None:
    """On a FIFO queue the event's key is its group (Q4: order per key)."""
    if key is None:
        return None
    return bytes(key).decode("utf-8", "backslashreplace")


def _runs(rows: list[EventRow]) -> list[tuple[str, list[EventRow]]]:
    """Maximal runs of consecutive events with one destination: each run is
    one engine call, and no event is ever sent before an earlier one."""
    if len({r[1] for r in rows}) == 1:  # one destination: one run, no loop
        return [(rows[0][1], rows)]
    runs: list[tuple[str, list[EventRow]]] = []
    for row in rows:
        if runs and runs[-1][0] == row[1]:
            runs[-1][1].append(row)
        else:
            runs.append((row[1], [row]))
    return runs
