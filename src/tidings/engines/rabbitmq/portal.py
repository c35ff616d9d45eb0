"""The portal: one event-loop thread per engine, so the blocking ports can
call an async-only driver (docs/architecture.md, "Engines whose drivers are
async-only"). Each blocking call is one ``run_coroutine_threadsafe`` hop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ...errors import EngineError, EngineTimeout

T = TypeVar("T")


class Portal:
    """A daemon thread running an event loop until :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it. Raises what it raises,
        EngineTimeout after ``timeout`` seconds, EngineError once closed."""
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise EngineError("the RabbitMQ engine is closed: open a new Client")
        if threading.current_thread() is self._thread:
            coro.close()
            raise EngineError("a blocking engine call was made from the engine's own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise EngineTimeout(
                f"RabbitMQ did not answer within {timeout}s: check the server, or raise "
                "the URL option operation_timeout"
            ) from None

    def close(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()
