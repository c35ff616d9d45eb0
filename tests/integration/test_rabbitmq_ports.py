"""The amqp:// engine's log-side ports (groups, cursors) refuse every call
with UnsupportedFeature while it has no log side, never a driver error."""

from __future__ import annotations

import time

import pytest

from tidings import Client, TopicPartition, UnsupportedFeature
from tidings.groups.coordinator import Member
from tidings.testing.pytest_plugin import require_engine, service_reachable

pytestmark = pytest.mark.engine("rabbitmq")


def test_groups_and_cursors_are_unsupported() -> None:
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    with Client("amqp://guest:guest@127.0.0.1:5672/") as client:
        groups, tp = client.engine.groups, TopicPartition("t", 0)
        member = Member("m", ("t",), 10.0, time.time())
        for call in (
            lambda: groups.join("g", member, "sticky", time.time()),
            lambda: groups.heartbeat("g", "m", frozenset(), time.time()),
            lambda: groups.leave("g", "m"),
            lambda: groups.commit("g", None, {tp: 1}, time.time()),
            lambda: groups.committed("g"),
            lambda: groups.describe("g"),
            groups.list_groups,
            lambda: groups.delete_group("g"),
            lambda: client.engine.open_cursor(["t"]),
            client.groups,
            lambda: client.consumer("t", "g"),
        ):
            with pytest.raises(UnsupportedFeature):
                call()
