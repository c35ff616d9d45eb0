"""The RabbitMQ engine (``amqp://`` / ``amqps://``): queues on quorum
queues, exchanges on RabbitMQ exchanges, topics on RabbitMQ streams (the
stream protocol, port 5552).

aio-pika is async-only: the blocking ports run on a portal, one event-loop
thread per engine instance (docs/architecture.md, "Engines whose drivers are
async-only"). See docs/rabbitmq.md for what is native, emulated and
unsupported, and the URL options.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Collection, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ...config import parse_duration
from ...errors import ConfigurationError
from ...features import Features
from ...groups.stored import StoredGroups
from ...ports.failed import FailedStore
from .addresses import Address
from .cursor import StreamCursor
from .failed import FailedStoreBeside
from .link import Link
from .log import StreamLog
from .portal import Portal
from .queues import RabbitQueues
from .streams import StreamLink

#: URL options tidings reads itself; the rest go to aio-pika (heartbeat, name, ...).
_OPTIONS = {
    "operation_timeout": "30s",
    "poll_interval": "50ms",
    "reconnect_timeout": "15s",
    "failed_store": "",
    "stream_port": "5552",
}


class RabbitMQEngine:
    """One connection to a RabbitMQ node (3.10+)."""

    features = Features(
        logs="native",  # RabbitMQ streams, one per partition
        durable_append="native",  # confirmed = replicated to a majority of the stream's nodes
        dense_offsets="native",  # stream offsets; tidings stores nothing else in them
        append_offsets="unsupported",  # a stream confirm carries no offset (L2)
        consumer_groups="emulated",  # GroupState in a CAS register on a stream
        seek_by_timestamp="native",  # the stream's timestamp offset spec, then a short scan
        retention="native",  # max-age / max-length-bytes, applied per segment by RabbitMQ
        compaction="unsupported",
        transactional_publish="unsupported",
        transactional_consume="unsupported",
        queues="native",
        dedup="emulated",
        fifo_groups="emulated",
        delays="emulated",
        exchanges="native",
        topic_bindings="unsupported",
        durability="quorum",
        failed_events="emulated",  # in the SQL database of the failed_store= option
        lease_extension="emulated",
        nack_delay="emulated",
        dead_letter_admin="emulated",
        next_visible="unsupported",
        release="emulated",
    )

    #: ``open_engine(url, loop=...)`` runs the engine on that loop (an AsyncClient's).
    runs_on_caller_loop = True

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.url = url
        driver_url, options = _split(url)
        timeout = parse_duration(options["operation_timeout"], "operation_timeout")
        self._poll_s = parse_duration(options["poll_interval"], "poll_interval")
        reconnect_s = parse_duration(options["reconnect_timeout"], "reconnect_timeout")
        if reconnect_s >= timeout:
            raise ConfigurationError(
                f"reconnect_timeout ({reconnect_s:g}s) must be shorter than operation_timeout "
                f"({timeout:g}s): a call waits for a reconnect within its own timeout"
            )
        self._link = Link(driver_url, reconnect_s)  # parses the node list: before the thread
        self._failed = FailedStoreBeside(options["failed_store"])
        if self._failed.url is None:
            self.features = replace(self.features, failed_events="unsupported")
        self._portal = Portal("tidings-rabbitmq", loop)
        self._timeout = timeout
        self._streams = _stream_link(self._link.addresses, options["stream_port"])
        self.log = StreamLog(self._portal, self._streams, timeout)
        self.groups = StoredGroups(self.log)  # over the log's CAS registers
        self.queues = RabbitQueues(self._portal, self._link, timeout, self._poll_s)
        try:
            self._portal.call(self._link.channel(), timeout)
        except BaseException:
            with contextlib.suppress(Exception):  # nothing left on a caller's loop
                self._portal.call(self._link.close(), 5)
            self._portal.close()
            raise

    def waiter(self, channels: Collection[str]) -> PollingWaiter:
        """RabbitMQ pushes nothing to a basic.get consumer: a waiting get polls."""
        return PollingWaiter(self._poll_s)

    def open_cursor(self, topics: Collection[str]) -> StreamCursor:
        """A push cursor on the topics' streams (tidings.ports.cursor);
        ``assign`` says which partitions, from where."""
        return StreamCursor(
            self._portal,
            self._streams.standing(),  # subscriptions kept open: their own connection
            self._timeout,
            lambda t: self.log.get_topic(t).partitions,
        )

    def failed_store(self) -> FailedStore:
        """The runtime's failed events, in the failed_store= database.
        Raises UnsupportedFeature, saying what to add, without the option."""
        return self._failed.store()

    def close(self) -> None:
        try:
            self._portal.call(self._close(), 10)
        finally:
            self._portal.close()
            self._failed.close()

    async def _close(self) -> None:
        await self.queues.close()
        await self._streams.close()
        await self._link.close()


class PollingWaiter:
    """A Waiter that wakes every ``interval`` (spurious wake-ups are allowed)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._closed = threading.Event()

    def arm(self) -> None:
        return None

    def wait(self, timeout: float) -> bool:
        self._closed.wait(min(timeout, self._interval))
        return True

    def close(self) -> None:
        self._closed.set()


def _stream_link(addresses: Sequence[Address], ports: str) -> StreamLink:
    """The stream-protocol connection for the same nodes, vhost and user:
    each node's host with ``stream_port`` (one port for every node, or one
    per node listed, in order: ``stream_port=5552,5553,5554``)."""
    parts = urlsplit(addresses[0].url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    hosts = [urlsplit(a.url).hostname or "127.0.0.1" for a in addresses]
    return StreamLink(
        list(zip(hosts, _stream_ports(ports, len(hosts)), strict=True)),
        vhost,
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
    )


def _stream_ports(text: str, nodes: int) -> list[int]:
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() and 0 < int(item) < 65536 for item in items):
        raise ConfigurationError(
            f"stream_port={text!r}: give a port (1-65535), or one per node listed"
        )
    if len(items) == 1:
        return [int(items[0])] * nodes
    if len(items) != nodes:
        raise ConfigurationError(
            f"stream_port lists {len(items)} ports for {nodes} nodes: give one port, "
            "or one per node in the order the URL lists them"
        )
    return [int(item) for item in items]


def _split(url: str) -> tuple[str, dict[str, str]]:
    """The URL for aio-pika (our options removed) and our options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    ours = dict(_OPTIONS)
    rest = []
    for key, value in query:
        if key in _OPTIONS:
            ours[key] = value
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), ours


__all__ = ["RabbitMQEngine"]
