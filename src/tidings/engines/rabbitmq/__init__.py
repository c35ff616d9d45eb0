"""The RabbitMQ engine (``amqp://`` / ``amqps://``): queues on quorum
queues, exchanges on RabbitMQ exchanges. The log side is not there yet (it
raises UnsupportedFeature).

aio-pika is async-only: the blocking ports run on a portal, one event-loop
thread per engine instance (docs/architecture.md, "Engines whose drivers are
async-only"). See docs/rabbitmq.md for what is native, emulated and
unsupported, and the URL options.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import replace
from typing import NoReturn, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...config import parse_duration
from ...errors import ConfigurationError
from ...features import Features
from ...groups.stored import StoredGroups
from ...ports.failed import FailedStore
from ...ports.log import LogEngine
from .failed import FailedStoreBeside
from .link import Link
from .nolog import NoLog, _unsupported
from .portal import Portal
from .queues import RabbitQueues

#: URL options tidings reads itself; the rest go to aio-pika (heartbeat, name, ...).
_OPTIONS = {
    "operation_timeout": "30s",
    "poll_interval": "50ms",
    "reconnect_timeout": "15s",
    "failed_store": "",
}


class RabbitMQEngine:
    """One connection to a RabbitMQ node (3.10+)."""

    features = Features(
        durable_append="unsupported",
        dense_offsets="unsupported",
        consumer_groups="unsupported",
        seek_by_timestamp="unsupported",
        retention="unsupported",
        compaction="unsupported",
        logs="unsupported",
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

    def __init__(self, url: str) -> None:
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
        self._portal = Portal("tidings-rabbitmq")
        self.log = NoLog()
        # No log, no groups: every call reaches NoLog and raises UnsupportedFeature.
        self.groups = StoredGroups(cast(LogEngine, self.log))
        self.queues = RabbitQueues(self._portal, self._link, timeout)
        try:
            self._portal.call(self._link.channel(), timeout)
        except BaseException:
            self._portal.close()
            raise

    def waiter(self, channels: Collection[str]) -> PollingWaiter:
        """RabbitMQ pushes nothing to a basic.get consumer: a waiting get polls."""
        return PollingWaiter(self._poll_s)

    def open_cursor(self, topics: Collection[str]) -> NoReturn:
        _unsupported()

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
