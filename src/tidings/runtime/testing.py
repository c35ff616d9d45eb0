"""Run an App in-process for your own tests (memory engine by default)::

    from tidings.runtime.testing import running

    with running(app) as r:
        r.client.create_topic("bookings")   # or before: topics must exist at start
        ...
        r.wait_until(lambda: len(seen) == 3)

Topics and queues your handlers use must exist before the runner starts:
create them with ``prepare`` (called with the client first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..client.client import Client
from ..errors import ConfigurationError
from .app import App
from .runner import Runner


class RunningApp:
    """An App running in this process: its ``client``, its ``runner``, and
    ways to wait for what the handlers do."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.client = runner.client

    @property
    def failed(self) -> Any:
        """The failed-event triage API on this engine."""
        from .triage import FailedEvents

        return FailedEvents(self.client, actor="test")

    def wait_until(self, condition: Callable[[], Any], timeout: float = 10.0) -> None:
        """Return once ``condition()`` is true; raise TimeoutError after
        ``timeout`` seconds (with the handlers' health in the message)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met in {timeout}s; {self.runner.health()}")
            time.sleep(0.005)


@contextmanager
def running(
    app: App, url: str = "memory://", prepare: Callable[[Client], Any] | None = None
) -> Iterator[RunningApp]:
    """Run ``app`` on ``url`` (default: a fresh memory engine) for the
    block; stopped gracefully on exit. Raises what Runner.start raises."""
    if not isinstance(app, App):
        raise ConfigurationError(f"running() takes an App, not {type(app).__name__}")
    client = Client(url)
    try:
        if prepare is not None:
            prepare(client)
        runner = Runner(app, client=client).start()
        try:
            yield RunningApp(runner)
        finally:
            runner.stop()
    finally:
        client.close()
