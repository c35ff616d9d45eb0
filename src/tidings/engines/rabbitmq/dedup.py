"""Deduplication (Q3), emulated: RabbitMQ 3.10 has none.

Each queue's idempotency keys are recorded in a RabbitMQ stream beside it,
``NAME.tidings-dedup`` (replicated like the quorum queue, kept ``window +
60 s`` by ``x-max-age``). A publish carrying keys holds the queue's dedup
lock (an exclusive queue, lock.py) so that check-then-publish is one step
across every process, then:

1. appends a marker to the stream and reads the stream from where this
   engine stopped last time up to the marker: every key any process
   recorded is now known here (a new engine starts ``window`` ago);
2. answers a key seen within the window with its original id, sending
   nothing; sends the other messages, each confirmed;
3. appends one record per newly sent key, confirmed; releases the lock.

A process that dies between 2 and 3 leaves its messages stored and their
keys unrecorded: a retry stores them again (at-least-once, never lost;
recording first would lose the message instead). The window runs from
the first publish of a key. Keyed publishes to one queue are serialized
across processes (a lock round trip, a marker and a read per batch).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from ...config import QueueConfig
from ...errors import EngineTimeout
from ...ports.queue import OutgoingMessage
from . import confirms
from .link import Link, persistent
from .lock import Locks
from .topology import companion, declare

SUFFIX = ".tidings-dedup"
_KEY, _ID, _AT, _MARKER = "x-tidings-key", "x-tidings-id", "x-tidings-at", "x-tidings-marker"
_PREFETCH = 1000
_RETENTION_SLACK_S = 60

Send = Callable[[OutgoingMessage, int], Awaitable[None]]


@dataclass
class _Seen:
    """What this engine read of one queue's stream."""

    keys: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (id, at ms)
    next_offset: int | None = None


def stream_name(queue: str) -> str:
    return companion(queue, SUFFIX)


def wanted(config: QueueConfig, messages: Sequence[OutgoingMessage]) -> bool:
    return config.dedup_window_s > 0 and any(m.idempotency_key for m in messages)


class Dedup:
    def __init__(self, link: Link, locks: Locks, timeout_s: float) -> None:
        self._link = link
        self._locks = locks
        self._timeout = timeout_s
        self._seen: dict[str, _Seen] = {}
        self._declared: set[str] = set()

    async def publish(
        self, config: QueueConfig, messages: Sequence[OutgoingMessage], ids: list[int], send: Send
    ) -> list[int]:
        """The ids in input order: an original id for a key seen within the
        window (nothing sent), else the new id (sent, key recorded)."""
        async with self._locks.held(stream_name(config.name), self._timeout):
            seen = await self._catch_up(config)
            out, fresh = _assign(seen, config, messages, ids)
            await asyncio.gather(*(send(m, i) for m, i in fresh))
            await self._record(config, [(m.idempotency_key, i) for m, i in fresh])
        return out

    def forget(self, queue: str) -> None:
        """``queue`` was deleted (its stream with it)."""
        self._seen.pop(queue, None)
        self._declared.discard(queue)

    async def _catch_up(self, config: QueueConfig) -> _Seen:
        seen = self._seen.setdefault(config.name, _Seen())
        marker = uuid.uuid4().hex
        async with self._link.scratch() as channel:
            if config.name not in self._declared:
                await declare(channel, stream_name(config.name), _arguments(config))
                self._declared.add(config.name)
            await channel.default_exchange.publish(
                persistent(b"", {_MARKER: marker}, 0), routing_key=stream_name(config.name)
            )
            await self._read_to(channel, config, seen, marker)
        _prune(seen, config)
        return seen

    async def _read_to(
        self, channel: AbstractChannel, config: QueueConfig, seen: _Seen, marker: str
    ) -> None:
        """Read the stream from ``seen.next_offset`` until ``marker`` comes by."""
        reached = asyncio.Event()

        async def on_record(message: AbstractIncomingMessage) -> None:
            amqp = message.headers or {}
            seen.next_offset = int(_text(amqp.get("x-stream-offset")) or 0) + 1
            if _text(amqp.get(_MARKER)) == marker:
                reached.set()
            elif _KEY in amqp:
                _learn(seen, _text(amqp[_KEY]), int(_text(amqp[_ID])), int(_text(amqp[_AT])))
            await message.ack()  # credit for the next records (streams need acks)

        await channel.set_qos(prefetch_count=_PREFETCH)
        stream = await channel.get_queue(stream_name(config.name), ensure=False)
        tag = await stream.consume(on_record, arguments={"x-stream-offset": _start(seen, config)})
        try:
            await asyncio.wait_for(reached.wait(), self._timeout)
        except TimeoutError as exc:
            raise EngineTimeout(
                f"the dedup record of queue {config.name!r} did not come back from RabbitMQ "
                f"within {self._timeout}s: retry"
            ) from exc
        finally:
            await stream.cancel(tag)

    async def _record(self, config: QueueConfig, keys: list[tuple[str | None, int]]) -> None:
        now = int(time.time() * 1000)
        stream = stream_name(config.name)
        records = [(key, id) for key, id in keys if key is not None]
        await asyncio.gather(*(
            confirms.publish(self._link, {}, stream, b"", {_KEY: k, _ID: str(i), _AT: str(now)}, i)
            for k, i in records
        ))
        seen = self._seen[config.name]
        for key, id in keys:
            if key is not None:
                _learn(seen, key, id, now)


def _assign(
    seen: _Seen, config: QueueConfig, messages: Sequence[OutgoingMessage], ids: list[int]
) -> tuple[list[int], list[tuple[OutgoingMessage, int]]]:
    """Each message's id, and the messages to send (a key repeated within
    the batch is sent once)."""
    out: list[int] = []
    fresh: list[tuple[OutgoingMessage, int]] = []
    batch: dict[str, int] = {}
    horizon = _horizon_ms(config)
    for m, id in zip(messages, ids, strict=True):
        key = m.idempotency_key
        known = seen.keys.get(key) if key is not None else None
        if key is not None and known is not None and known[1] > horizon:
            out.append(known[0])
        elif key is not None and key in batch:
            out.append(batch[key])
        else:
            if key is not None:
                batch[key] = id
            fresh.append((m, id))
            out.append(id)
    return out, fresh


def _learn(seen: _Seen, key: str, id: int, at_ms: int) -> None:
    """Records are read in stream order and a key is recorded again only
    once its earlier record left the window: the later one stands."""
    seen.keys[key] = (id, at_ms)


def _prune(seen: _Seen, config: QueueConfig) -> None:
    horizon = _horizon_ms(config)
    for key in [k for k, (_, at) in seen.keys.items() if at <= horizon]:
        del seen.keys[key]


def _horizon_ms(config: QueueConfig) -> int:
    return int((time.time() - config.dedup_window_s) * 1000)


def _start(seen: _Seen, config: QueueConfig) -> Any:
    """Where to read from: on from last time, else one window ago."""
    if seen.next_offset is not None:
        return seen.next_offset
    return datetime.now(UTC) - timedelta(seconds=config.dedup_window_s + 1)


def _arguments(config: QueueConfig) -> dict[str, Any]:
    keep_s = int(config.dedup_window_s) + _RETENTION_SLACK_S
    return {
        "x-queue-type": "stream",
        "x-max-age": f"{keep_s}s",
        # Small segments: retention drops whole segments only.
        "x-stream-max-segment-size-bytes": 1_000_000,
    }


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
