"""What tidings knows of an exchange: its kind and bindings, kept in a quorum
queue ``NAME.tidings-exchange`` holding one message (AMQP cannot list an
exchange's bindings, and a publish must say which queues it reached).

Reading takes the message and returns it at once (another reader meanwhile
finds the queue empty and asks again). Writing happens under the exchange's
lock (see lock.py): every message there is taken, the new one published and
confirmed, then the old ones acked; a writer that dies in between leaves two,
which the next write folds into one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from ...routing import Binding
from .link import Link, persistent
from .topology import companion, declare

SUFFIX = ".tidings-exchange"
_READ_ATTEMPTS = 50  # each waits 10 ms: a reader holds the message for about 1 ms


@dataclass
class Entry:
    kind: str
    bindings: list[Binding] = field(default_factory=list)
    version: int = 0  # the newest wins where a dead writer left two

    def with_binding(self, new: Binding) -> Entry:
        """The same binding (queue and key) again replaces its weight."""
        kept = [b for b in self.bindings if (b.queue, b.key) != (new.queue, new.key)]
        return Entry(self.kind, [*kept, new], self.version)


def _encode(entry: Entry) -> bytes:
    bindings = [list(b) for b in entry.bindings]
    return json.dumps({"kind": entry.kind, "bindings": bindings, "version": entry.version}).encode()


def _decode(body: bytes) -> Entry:
    data = json.loads(body)
    return Entry(data["kind"], [Binding(*b) for b in data["bindings"]], data["version"])


async def read(link: Link, exchange: str) -> Entry | None:
    """The entry of ``exchange``, or None if tidings never declared it."""
    async with link.scratch() as channel:
        name = companion(exchange, SUFFIX)
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        held = await _take(channel, name)
        for message in held:
            await message.nack(requeue=True)
    return _newest(held)


async def write(link: Link, exchange: str, entry: Entry, fresh: bool) -> None:
    """Replace the entry (the caller holds the exchange's lock); ``fresh``:
    there is none yet. The old one is held until the new one is confirmed,
    so a reader sees one of them, never neither for good."""
    name = companion(exchange, SUFFIX)
    async with link.scratch() as channel:
        await declare(channel, name, {"x-queue-type": "quorum"})
        old = [] if fresh else await _take(channel, name)
        entry.version = max([e.version for e in map(_entry, old)] + [entry.version]) + 1
        await channel.default_exchange.publish(persistent(_encode(entry), {}, 0), routing_key=name)
        for message in old:
            await message.ack()


async def _take(channel: AbstractChannel, name: str) -> list[AbstractIncomingMessage]:
    """Every message of the catalog queue, held; waits while a reader holds it."""
    queue = await channel.get_queue(name, ensure=False)
    out: list[AbstractIncomingMessage] = []
    for _ in range(_READ_ATTEMPTS):
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            out.append(message)
        if out:
            return out
        await asyncio.sleep(0.01)
    return out


def _entry(message: AbstractIncomingMessage) -> Entry:
    return _decode(message.body)


def _newest(messages: list[AbstractIncomingMessage]) -> Entry | None:
    entries = [_entry(m) for m in messages]
    return max(entries, key=lambda e: e.version) if entries else None


async def remove(link: Link, exchange: str) -> None:
    async with link.scratch() as channel:
        await channel.queue_delete(companion(exchange, SUFFIX))
