"""The connection to RabbitMQ's stream protocol (port 5552, rstream's
low-level ``Client``), on the portal's loop only.

Why the low-level client: tidings needs to know when reading reached the
end of a stream, and rstream's ``Consumer`` only calls back. Here a read
subscribes, then makes one more request on the same connection (a
*barrier*): RabbitMQ sends the chunks it has for a subscription before it
answers the next request, so once the barrier's answer is in, every chunk
that was committed when reading began has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rstream import exceptions as rx
from rstream import schema
from rstream.client import Client
from rstream.connection import ConnectionClosed
from rstream.constants import OffsetType

from ...errors import (
    AlreadyExists,
    ConfigurationError,
    EngineError,
    EngineUnavailable,
    RecordTooLarge,
    TidingsError,
    TopicNotFound,
)
from .subscription import Chunk, Subscription

T = TypeVar("T")

#: Bytes a publish frame adds around its messages (rstream's own figures).
FRAME_OVERHEAD = 13 + 12
_IDS = 255  # publisher and subscription ids are one byte per connection
#: Publishers kept declared between publishes, per connection: a publish to
#: a stream written recently skips the declare and delete round trips.
KEPT_PUBLISHERS = 64
_PLUGIN_HINT = (
    "is the stream plugin enabled? run `rabbitmq-plugins enable rabbitmq_stream` on the "
    "server (it listens on port 5552; set stream_port= in the URL if it is elsewhere)"
)


@dataclass
class _Pending:
    """A publish waiting for its confirms."""

    ids: set[int]
    done: asyncio.Future[None]
    errors: list[int] = field(default_factory=list)


@dataclass
class _Publisher:
    """A publisher kept declared on one stream (for one reference)."""

    pid: int
    next_id: int = 1  # publishing ids when the caller gives none
    users: int = 0  # publishes under way (a dropped one is deleted after them)
    dropped: bool = False  # no longer kept: the last user deletes it
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # reference writers


class _Unreachable(Exception):
    """One node's stream port did not answer (the next one is tried)."""


class _PublisherGone(Exception):
    """RabbitMQ no longer knows a kept publisher (its stream was deleted,
    or recreated): nothing was stored, declare it again."""


class StreamLink:
    """One stream-protocol connection, opened lazily on the first node that
    answers, reopened (on the next one) after a drop."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        vhost: str,
        user: str,
        password: str,
        first: int = 0,
    ) -> None:
        if not endpoints:
            raise ValueError("a stream link needs at least one host:port")
        self._endpoints = list(endpoints)  # the nodes, tried in turn from _at
        self._at = first
        self._login = (vhost, user, password)
        self._client: Client | None = None
        self._publishers: asyncio.Queue[int] | None = None
        self._subscriptions: asyncio.Queue[int] | None = None
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._kept: dict[tuple[str, str | None], _Publisher] = {}  # oldest first
        self.tails = 0  # registers' standing subscriptions (register.py)
        self._standing: StreamLink | None = None
        self._opening = asyncio.Lock()

    @property
    def node(self) -> str:
        """``host:port`` of the node connected to (or tried next)."""
        host, port = self._endpoints[self._at]
        return f"{host}:{port}"

    # ---- connection ----------------------------------------------------
    async def client(self) -> Client:
        async with self._opening:
            if self._client is None or not self._client.is_connection_alive():
                dead, self._client = self._client, None
                if dead is not None:  # stop its heartbeat task and listener
                    await _shut(dead)
                await self._open()
        assert self._client is not None
        return self._client

    async def _open(self) -> None:
        """Connect to the first node that answers, from the last one that
        did: a node that is down (or its stream port closed) fails over to
        the next one listed, as the AMQP side does. RabbitMQ takes a publish
        on any node and forwards it to the stream's leader, and reads on any
        node holding a replica."""
        unreachable = []
        for i in range(len(self._endpoints)):
            at = (self._at + i) % len(self._endpoints)
            try:
                client = await self._connect(*self._endpoints[at])
            except _Unreachable as exc:
                unreachable.append(str(exc))
                continue
            self._at = at
            break
        else:
            raise EngineUnavailable(
                f"cannot reach RabbitMQ's stream port ({'; '.join(unreachable)}): {_PLUGIN_HINT}"
            )
        client.add_handler(schema.PublishConfirm, self._on_confirm, name="tidings-confirm")
        client.add_handler(schema.PublishError, self._on_error, name="tidings-error")
        self._fail_pending("the connection to RabbitMQ's stream port was reopened")
        self._kept.clear()  # publishers live and die with their connection
        self._client = client
        self._publishers = _pool()
        self._subscriptions = _pool()

    async def _connect(self, host: str, port: int) -> Client:
        vhost, user, password = self._login
        client = Client(host, port, frame_max=1 << 20, heartbeat=60, connection_name="tidings")
        try:
            await asyncio.wait_for(client.start(), 10)
            await asyncio.wait_for(client.authenticate(vhost, user, password), 10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            await _shut(client)
            raise _Unreachable(f"{host}:{port}: {exc!r}") from exc
        except rx.ServerError as exc:
            await _shut(client)
            raise EngineUnavailable(
                f"RabbitMQ's stream port {host}:{port} refused user {user!r} on vhost "
                f"{vhost!r} ({type(exc).__name__}): check the credentials and permissions"
            ) from exc
        return client

    def standing(self) -> StreamLink:
        """A second connection, for subscriptions kept open (push cursors,
        registers' tails). Measured: while a subscription on a connection
        is being pushed chunks, a publish on that same connection waits
        ~3.5 ms for its confirm instead of ~0.2 ms; on two connections,
        neither waits for the other."""
        if self._standing is None:
            self._standing = StreamLink(self._endpoints, *self._login, first=self._at)
        return self._standing

    @property
    def frame_max(self) -> int:
        return self._client.frame_max if self._client is not None else 1 << 20

    async def close(self) -> None:
        client, self._client = self._client, None
        self._fail_pending("the engine was closed")
        self._kept.clear()
        if self._standing is not None:
            await self._standing.close()
        if client is not None:
            await _shut(client)

    # ---- streams -------------------------------------------------------
    async def create(self, stream: str, arguments: dict[str, Any]) -> None:
        client = await self.client()
        try:
            await client.create_stream(stream, arguments)
        except rx.StreamAlreadyExists as exc:
            raise AlreadyExists(f"stream {stream!r} exists already") from exc
        except rx.PreconditionFailed as exc:
            raise ConfigurationError(
                f"RabbitMQ refused the arguments of stream {stream!r}: {arguments}"
            ) from exc

    async def delete(self, stream: str) -> None:
        """Delete ``stream`` (absent: nothing to do)."""
        client = await self.client()
        for where in [w for w in self._kept if w[0] == stream]:  # RabbitMQ drops them
            await self._discard(client, where)
        with contextlib.suppress(rx.StreamDoesNotExist):
            await client.delete_stream(stream)

    async def exists(self, stream: str) -> bool:
        return bool(await (await self.client()).stream_exists(stream))

    # ---- publishing ------------------------------------------------------
    async def publish(
        self,
        stream: str,
        messages: Sequence[bytes],
        reference: str | None = None,
        first_id: int | None = None,
    ) -> int:
        """Publish ``messages`` and wait until RabbitMQ confirmed them all.

        With a ``reference`` the broker drops a message whose publishing id
        is not above the last one stored for that reference (deduplication):
        such a message is confirmed all the same. Returns the next
        publishing id of the reference (``first_id`` defaults to it)."""
        client = await self.client()
        self.check_sizes(messages)
        for retry in (False, True):
            publisher = await self._publisher(client, stream, reference)  # in use: ours
            try:
                async with publisher.turn if reference else contextlib.nullcontext():
                    return await self._publish_on(
                        client, publisher, stream, messages, reference, first_id
                    )
            except _PublisherGone as exc:
                self._drop(stream, reference, publisher)
                if retry or reference:  # a reference's writer must learn of it
                    raise TopicNotFound(f"stream {stream!r} does not exist") from exc
            except BaseException:
                self._drop(stream, reference, publisher)  # its state is unknown now
                raise
            finally:
                await self._done_with(client, publisher)
        raise AssertionError("unreachable")

    async def _publish_on(
        self,
        client: Client,
        publisher: _Publisher,
        stream: str,
        messages: Sequence[bytes],
        reference: str | None,
        first_id: int | None,
    ) -> int:
        if first_id is None and reference:
            first_id = await client.query_publisher_sequence(stream, reference) + 1
        elif first_id is None:  # ids only match confirms to sends: never reused
            first_id = publisher.next_id
            publisher.next_id += len(messages)
        await self._send(client, publisher.pid, messages, first_id)
        return first_id + len(messages)

    async def _publisher(self, client: Client, stream: str, reference: str | None) -> _Publisher:
        """The kept publisher for (stream, reference), declared if new,
        counted as in use (give it back with :meth:`_done_with`)."""
        where = (stream, reference)
        kept = self._kept.pop(where, None)
        if kept is None:
            await self._evict(client)
            kept = _Publisher(await self._declare(client, stream, reference))
        self._kept[where] = kept  # most recently used last
        kept.users += 1
        return kept

    async def _declare(self, client: Client, stream: str, reference: str | None) -> int:
        pid = await self._publishers_pool().get()
        try:
            await client.declare_publisher(stream, reference, pid)
        except BaseException as exc:
            self._publishers_pool().put_nowait(pid)
            if isinstance(exc, rx.StreamDoesNotExist):
                raise TopicNotFound(f"stream {stream!r} does not exist") from exc
            if isinstance(exc, rx.ServerError) and not isinstance(exc, rx.StreamNotAvailable):
                raise EngineError(
                    f"RabbitMQ refused a publisher on stream {stream!r} ({type(exc).__name__})"
                ) from exc
            raise
        return pid

    async def _evict(self, client: Client) -> None:
        """Make room: drop the least recently used idle publishers."""
        idle = [w for w, p in self._kept.items() if p.users == 0]
        for where in idle[: max(0, len(self._kept) + 1 - KEPT_PUBLISHERS)]:
            await self._discard(client, where)

    async def _discard(self, client: Client, where: tuple[str, str | None]) -> None:
        """Stop keeping the publisher for ``where``; deleted now if idle."""
        publisher = self._kept[where]
        self._drop(*where, publisher)
        await self._done_with(client, publisher, used=False)

    def _drop(self, stream: str, reference: str | None, publisher: _Publisher) -> None:
        """Keep ``publisher`` no longer (deleted once its last user is done)."""
        publisher.dropped = True
        if self._kept.get((stream, reference)) is publisher:
            del self._kept[stream, reference]

    async def _done_with(self, client: Client, publisher: _Publisher, used: bool = True) -> None:
        """One user fewer; a dropped publisher's last user deletes it on the
        server and gives its id back."""
        publisher.users -= used
        if not publisher.dropped or publisher.users > 0:
            return
        if client.is_connection_alive():  # a dead one would not answer for 10 s
            with contextlib.suppress(Exception):
                await client.delete_publisher(publisher.pid)
        if client is self._client:  # a new connection has a new pool
            self._publishers_pool().put_nowait(publisher.pid)

    def _publishers_pool(self) -> asyncio.Queue[int]:
        assert self._publishers is not None
        return self._publishers

    def check_sizes(self, messages: Sequence[bytes]) -> None:
        limit = self.frame_max - FRAME_OVERHEAD
        for data in messages:
            if len(data) > limit:
                raise RecordTooLarge(
                    f"a record encodes to {len(data)} bytes, over the {limit} bytes a "
                    "RabbitMQ stream frame holds (stream.frame_max): send smaller records"
                )

    async def _send(self, client: Client, pid: int, messages: Sequence[bytes], first: int) -> None:
        """Send in frames under frame_max; wait for every confirm."""
        loop = asyncio.get_running_loop()
        ids = set(range(first, first + len(messages)))
        pending = _Pending(set(ids), loop.create_future())
        for i in ids:
            self._pending[pid, i] = pending
        try:
            for frame in _frames(messages, first, self.frame_max):
                await client.send_publish_frame(schema.Publish(publisher_id=pid, messages=frame))
            await _unless_dropped(client, pending.done)
        finally:
            for i in ids:
                self._pending.pop((pid, i), None)
        if pending.errors:
            if rx.ServerError.from_code(pending.errors[0]) is rx.PublisherDoesNotExist:
                raise _PublisherGone()
            raise _publish_error(pending.errors[0])

    def _on_confirm(self, frame: schema.PublishConfirm) -> None:
        for i in frame.publishing_ids:
            pending = self._pending.pop((frame.publisher_id, i), None)
            if pending is not None:
                pending.ids.discard(i)
                if not pending.ids and not pending.done.done():
                    pending.done.set_result(None)

    def _on_error(self, frame: schema.PublishError) -> None:
        for error in frame.errors:
            pending = self._pending.pop((frame.publisher_id, error.publishing_id), None)
            if pending is not None:
                pending.errors.append(error.response_code)
                pending.ids.discard(error.publishing_id)
                if not pending.ids and not pending.done.done():
                    pending.done.set_result(None)

    def _fail_pending(self, why: str) -> None:
        for pending in list(self._pending.values()):
            if not pending.done.done():
                pending.done.set_exception(EngineUnavailable(f"{why}: outcome unknown"))
        self._pending.clear()

    # ---- reading ---------------------------------------------------------
    async def open_subscription(
        self, stream: str, kind: OffsetType, value: int | None, credit: int
    ) -> Subscription:
        """Subscribe from an offset spec; ``close()`` the result when done."""
        client = await self.client()
        assert self._subscriptions is not None
        pool = self._subscriptions
        sid = await pool.get()
        client.add_handler(schema.Deliver, _ignore, name=str(sid))
        sub = Subscription(client, sid, stream, credit, lambda: pool.put_nowait(sid))
        try:
            await client.subscribe(stream, sid, schema.OffsetSpec.from_params(kind, value), credit)
        except BaseException as exc:
            sub.subscribed = False
            await sub.close()
            if isinstance(exc, rx.StreamDoesNotExist):
                raise TopicNotFound(f"stream {stream!r} does not exist") from exc
            raise
        return sub

    @contextlib.asynccontextmanager
    async def subscribe(
        self, stream: str, kind: OffsetType, value: int | None, credit: int
    ) -> AsyncIterator[Subscription]:
        """A subscription from an offset spec; unsubscribed on exit."""
        sub = await self.open_subscription(stream, kind, value, credit)
        try:
            yield sub
        finally:
            await sub.close()

    async def chunks(
        self, stream: str, kind: OffsetType, value: int | None, credit: int = 8
    ) -> AsyncGenerator[Chunk, None]:
        """The chunks from the spec to the end as it stands now, fetched
        ``credit`` chunks at a time; stop iterating to stop reading."""
        async with self.subscribe(stream, kind, value, credit) as sub:
            while True:
                got = await sub.drain()
                for chunk in got:
                    yield chunk
                if sub.outstanding:  # RabbitMQ had credit left: nothing more to send
                    return
                await sub.credit(credit)


async def _unless_dropped(client: Client, done: asyncio.Future[None]) -> None:
    """Wait for ``done``; EngineUnavailable at once if the connection drops
    first (rstream's reading task ends with it), not at the timeout."""
    listener = client._tasks.get("listener")
    if listener is None:
        await done
        return
    await asyncio.wait({done, listener}, return_when=asyncio.FIRST_COMPLETED)
    if not done.done():
        raise EngineUnavailable(
            "the connection to RabbitMQ's stream port dropped before the publish was "
            "confirmed: it may or may not be stored"
        )
    done.result()


async def typed(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``; rstream's and the socket's errors become tidings'
    typed ones (the next call reconnects if the connection dropped)."""
    try:
        return await coro
    except TidingsError:
        raise
    except rx.StreamNotAvailable as exc:  # starting (just created) or electing a leader
        raise EngineUnavailable(
            "a RabbitMQ stream of this topic is not available yet (just created, or its "
            "leader is moving): retry in a moment"
        ) from exc
    except rx.ServerError as exc:
        raise EngineError(
            f"RabbitMQ's stream port refused a request ({type(exc).__name__})"
        ) from exc
    except (TimeoutError, OSError, ConnectionClosed, rx.ClientError) as exc:
        raise EngineUnavailable(
            f"RabbitMQ's stream port did not answer ({type(exc).__name__}): the next call "
            "reconnects; check the server"
        ) from exc


def _pool() -> asyncio.Queue[int]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(_IDS):
        queue.put_nowait(i)
    return queue


def _frames(messages: Sequence[bytes], first: int, frame_max: int) -> list[list[schema.Message]]:
    """The messages cut into publish frames that fit ``frame_max``."""
    frames: list[list[schema.Message]] = [[]]
    size = 13
    for i, data in enumerate(messages):
        need = 12 + len(data)
        if frames[-1] and size + need > frame_max:
            frames.append([])
            size = 13
        frames[-1].append(schema.Message(publishing_id=first + i, filter_value=None, data=data))
        size += need
    return frames


def _publish_error(code: int) -> Exception:
    cls = rx.ServerError.from_code(code)
    if cls is rx.StreamDoesNotExist:
        return TopicNotFound("the stream was deleted while publishing to it")
    if cls is rx.FrameTooLarge:
        return RecordTooLarge("RabbitMQ refused a publish frame as too large")
    return EngineError(f"RabbitMQ refused a publish ({cls.__name__}, code {code})")


def _ignore(_frame: Any) -> None:
    return None


async def _shut(client: Client) -> None:
    """Close ``client``, and its socket even when the connection broke
    (rstream's close leaves a broken connection's socket open)."""
    await _quietly(client.close())
    writer = getattr(client._conn, "_writer", None) if client._conn is not None else None
    if writer is not None:
        writer.close()
        await _quietly(writer.wait_closed())


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(Exception):
        await coro
