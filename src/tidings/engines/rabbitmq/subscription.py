"""One subscription on RabbitMQ's stream protocol: the chunks RabbitMQ
pushed for it, taken from rstream's per-subscription frame queue
(``Client._frames``, an internal of rstream: the ``rabbitmq`` extra pins
rstream 1.1.x), and the credit given back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rstream import schema
from rstream.client import Client


@dataclass
class Chunk:
    """One delivered chunk: its first offset, broker timestamp, messages."""

    first_offset: int
    timestamp: int
    messages: list[bytes]



class Subscription:
    """Frames of one subscription, taken from rstream's per-handler queue."""

    def __init__(
        self, client: Client, sid: int, stream: str, credit: int, release: Callable[[], None]
    ) -> None:
        self._client, self._sid, self.stream = client, sid, stream
        self.outstanding = credit  # chunks RabbitMQ may still send
        self.subscribed = True
        self._release: Callable[[], None] | None = release
        self._held: list[Any] = []  # frames taken off rstream's queue while waiting

    async def close(self) -> None:
        """Unsubscribe and give the id back (idempotent)."""
        release, self._release = self._release, None
        if release is None:
            return
        if self.subscribed and self._client.is_connection_alive():  # a dead one: no answer
            with contextlib.suppress(Exception):
                await self._client.unsubscribe(self._sid)
        self._client.remove_handler(schema.Deliver, str(self._sid))
        self._client._frames.pop(self._sid, None)  # rstream keeps a frame queue per handler
        release()

    async def drain(self) -> list[Chunk]:
        """The chunks delivered so far, after a barrier (see module doc)."""
        await self._client.stream_exists(self.stream)
        return self.take()

    @property
    def alive(self) -> bool:
        return self._release is not None and self._client.is_connection_alive()

    def take(self) -> list[Chunk]:
        """The chunks delivered so far, in order."""
        queue = self._client._frames[self._sid]
        frames, self._held = self._held, []
        while not queue.empty():
            frames.append(queue.get_nowait())
        out = []
        for frame in frames:
            if frame.subscription_id == self._sid:
                self.outstanding -= 1
                out.append(Chunk(frame.chunk_first_offset, frame.timestamp, frame.get_messages()))
        return out

    async def arrival(self) -> None:
        """Return once a frame is there (held for the next ``take``)."""
        if self._held or not self._client._frames[self._sid].empty():
            return
        self._held.append(await self._client._frames[self._sid].get())

    async def credit(self, chunks: int) -> None:
        if chunks > 0:
            self.outstanding += chunks
            await self._client.credit(self._sid, chunks)
