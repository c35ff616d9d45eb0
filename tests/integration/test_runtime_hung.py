"""A hung handler loses its partitions after ``max_processing``; its late
commit is fenced (L4, issue 10)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tidings import Client, ConfigurationError, GroupConfig
from tidings.runtime import App
from tidings.runtime.runner import Runner

SESSION = GroupConfig(session_timeout_s=1.0, heartbeat_interval_s=0.1)


def test_hung_handler_partitions_go_to_another_member(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    release = threading.Event()
    hung: list[bytes] = []
    taken_over: list[bytes] = []

    hanging = App("svc")

    @hanging.handler(topic="jobs", group="workers", group_config=SESSION, max_processing=0.5)
    def stuck(payload: bytes) -> None:
        hung.append(payload)
        release.wait(20)  # hangs until the test lets it go

    healthy = App("svc")

    @healthy.handler(topic="jobs", group="workers", group_config=SESSION, max_processing=5)
    def fine(payload: bytes) -> None:
        taken_over.append(payload)

    with Client(url) as setup:
        setup.create_topic("jobs")
        for i in range(10):
            setup.produce("jobs", b"j%d" % i)
    a = Runner(hanging, url).start()
    deadline = time.monotonic() + 10
    while not hung:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    b = Runner(healthy, url).start()
    try:
        deadline = time.monotonic() + 20
        while len(taken_over) < 10:
            assert time.monotonic() < deadline, taken_over
            time.sleep(0.02)
        assert taken_over == [b"j%d" % i for i in range(10)]  # from the last commit, in order
    finally:
        release.set()
        a.stop()
        b.stop()
    with Client(url) as check:
        committed = check.engine.groups.committed("workers")
    assert list(committed.values()) == [10]  # the hung member's late commit did not win


def test_max_processing_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_processing"):
        App("svc").handler(topic="jobs", max_processing=0)
