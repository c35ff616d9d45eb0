"""A compare-and-set register on a RabbitMQ stream, replicated by RabbitMQ
itself (no server of tidings' own): the topic catalog and each consumer
group's state live in one.

Every write is the whole value, published by a publisher with the
register's fixed reference and publishing id = version + 1. RabbitMQ's
publisher deduplication stores a message only if its id is above the last
one stored for the reference, so of several writers that read version
``v`` exactly one stores version ``v + 1``; the others' messages are
dropped *and still confirmed*. So a writer reads back the record that
follows version ``v`` and compares the nonce it put in: won, or lost and
retries on the new value. Versions are therefore dense in the stream, the
record after version ``v`` is version ``v + 1``, and the current version is
the reference's publisher sequence (queried, never guessed from a read).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import aclosing, suppress
from typing import Any, NamedTuple, TypeVar

from rstream.constants import OffsetType

from ...errors import AlreadyExists, EngineConflict, EngineError, TopicNotFound
from .streams import StreamLink
from .subscription import Subscription

T = TypeVar("T")
REFERENCE = "tidings-register"
#: Old versions are garbage: keep little of them (RabbitMQ drops whole segments).
ARGUMENTS = {"max-length-bytes": 4 << 20, "stream-max-segment-size-bytes": 1 << 20}
_RETRIES = 200
#: Registers per connection that keep a subscription open on their stream
#: (subscription ids are one byte per connection; cursors need theirs).
TAILS = 16
#: How long a write waits for its own record to be pushed before reading
#: it the slow way (subscribe, read, unsubscribe).
_TAIL_WAIT = 5.0


class Version(NamedTuple):
    """A stored value: its version, where it is, and the value."""

    version: int
    offset: int | None
    value: Any
    nonce: str = ""


class Register:
    """One CAS register: the stream ``name``."""

    def __init__(self, link: StreamLink, name: str) -> None:
        self.link, self.name = link, name
        self._local = asyncio.Lock()  # writers in this process take turns (fewer lost races)
        self._ensured = False
        #: The last version this process read or stored: a load whose
        #: sequence query still names it needs no read of the stream.
        self._known: Version | None = None
        self._tail: _Tail | None = None

    async def ensure(self) -> None:
        """Create the register's stream if absent (once per process)."""
        if self._ensured:
            return
        try:
            await self.link.create(self.name, ARGUMENTS)
        except AlreadyExists:
            pass
        self._ensured = True

    async def load(self) -> Version:
        """The current version (0 and ``None`` value when never written)."""
        for _ in range(_RETRIES):
            client = await self.link.client()
            version = await client.query_publisher_sequence(self.name, REFERENCE)
            if version == 0:
                return Version(0, None, None)
            known = self._known
            if known is not None and known.version == version:
                return known  # versions are dense: nothing was written since
            found = await self._last()
            if found is not None and found.version == version:
                self._known = found
                return found
            # a write landed between the two requests: ask again
        raise EngineConflict(f"register {self.name!r} kept changing while being read")

    async def _last(self) -> Version | None:
        # LAST starts at the last chunk; should that be a chunk RabbitMQ
        # keeps for itself (tracking), it sends nothing: then scan it all.
        for spec in (OffsetType.LAST, OffsetType.FIRST):
            last: Version | None = None
            async with aclosing(self.link.chunks(self.name, spec, None)) as chunks:
                async for chunk in chunks:
                    for i, data in enumerate(chunk.messages):
                        last = _parse(data, chunk.first_offset + i)
            if last is not None:
                return last
        return None

    async def _after(self, offset: int | None) -> Version | None:
        """The first record after ``offset`` (from the start when ``None``):
        pushed through the register's standing subscription when it has
        one (a subscribe costs RabbitMQ ~1.5 ms), else read once."""
        if offset is not None:
            tail = await self._tail_at(offset + 1)
            if tail is not None:
                with suppress(TimeoutError):
                    return await asyncio.wait_for(tail.next(), _TAIL_WAIT)
                await self.close_tail()
        return await self._after_once(offset)

    async def _tail_at(self, offset: int) -> _Tail | None:
        """The standing subscription, positioned at ``offset`` (None when
        this connection has no room for another)."""
        tail = self._tail
        if tail is not None and (not tail.sub.alive or tail.position > offset):
            await self.close_tail()
            tail = None
        if tail is None:
            pushes = self.link.standing()
            if pushes.tails >= TAILS:
                return None
            sub = await pushes.open_subscription(self.name, OffsetType.OFFSET, offset, 4)
            pushes.tails += 1
            tail = self._tail = _Tail(sub, offset)
        tail.skip_to(offset)
        return tail

    async def close_tail(self) -> None:
        tail, self._tail = self._tail, None
        if tail is not None:
            self.link.standing().tails -= 1
            await tail.sub.close()

    async def _after_once(self, offset: int | None) -> Version | None:
        if offset is None:
            spec, value = OffsetType.FIRST, None
        else:
            spec, value = OffsetType.OFFSET, offset + 1
        async with aclosing(self.link.chunks(self.name, spec, value, credit=1)) as chunks:
            async for chunk in chunks:
                for i, data in enumerate(chunk.messages):
                    at = chunk.first_offset + i
                    if offset is None or at > offset:
                        return _parse(data, at)
        return None

    async def swap(self, current: Version, value: Any) -> bool:
        """Store ``value`` as version ``current.version + 1`` unless another
        writer stored that version first. True if this write won."""
        nonce = uuid.uuid4().hex
        body = json.dumps({"v": current.version + 1, "nonce": nonce, "value": value}).encode()
        await self.link.publish(self.name, [body], REFERENCE, current.version + 1)
        stored = await self._after(current.offset)
        if stored is None or stored.version != current.version + 1:
            raise EngineError(
                f"register {self.name!r}: version {current.version + 1} is not where it "
                "must be (was the stream written by something other than tidings?)"
            )
        self._known = stored  # as a reader parses it (JSON), whoever won
        return stored.nonce == nonce

    async def update(self, fn: Callable[[Any], tuple[Any, T]]) -> T:
        """Apply ``fn(value) -> (new value, result)`` atomically (``value``
        is ``None`` when never written; return :data:`UNCHANGED` to store
        nothing). Retries on a lost race: ``fn`` must have no side effects."""
        async with self._local:
            try:
                return await self._update(fn)
            except TopicNotFound:  # the stream went: nothing known holds
                await self.forget()
                raise

    async def _update(self, fn: Callable[[Any], tuple[Any, T]]) -> T:
        known = self._known
        if known is not None and self._tail is not None:
            # Optimistic: write on the version this process knows, without
            # asking RabbitMQ first; the CAS refuses it if it is stale. A
            # decision taken on it (store nothing, or an error) is taken
            # again on the stored version.
            try:
                new, result = fn(known.value)
            except Exception:
                new = UNCHANGED
            if new is not UNCHANGED and await self.swap(known, new):
                return result
        for _ in range(_RETRIES):
            current = await self.load()
            new, result = fn(current.value)
            if new is UNCHANGED:
                return result
            if await self.swap(current, new):
                return result
        raise EngineConflict(
            f"register {self.name!r}: {_RETRIES} writes in a row lost to other writers"
        )

    async def forget(self) -> None:
        """Drop what this process knows of the stream (deleted)."""
        self._known, self._ensured = None, False
        await self.close_tail()


class _Tail:
    """A subscription kept open on a register's stream: each new version is
    pushed to it, so a writer learns who won without subscribing again."""

    def __init__(self, sub: Subscription, position: int) -> None:
        self.sub, self.position = sub, position  # the next offset to hand out
        self._ready: deque[tuple[int, bytes]] = deque()

    def skip_to(self, offset: int) -> None:
        while self._ready and self._ready[0][0] < offset:
            self._ready.popleft()
        self.position = max(self.position, offset)

    async def next(self) -> Version:
        """The record at ``position`` (waits for RabbitMQ to push it)."""
        while not self._ready:
            await self.sub.arrival()
            chunks = self.sub.take()
            for chunk in chunks:
                for i, data in enumerate(chunk.messages):
                    at = chunk.first_offset + i
                    if at >= self.position:
                        self._ready.append((at, data))
            await self.sub.credit(len(chunks))
        at, data = self._ready.popleft()
        self.position = at + 1
        return _parse(data, at)


#: What ``fn`` returns as the new value to store nothing.
UNCHANGED: Any = object()


def _parse(data: bytes, offset: int) -> Version:
    raw = json.loads(data)
    return Version(int(raw["v"]), offset, raw["value"], str(raw["nonce"]))
