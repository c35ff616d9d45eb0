"""The portal: the event loop an engine on an async-only driver runs on, so
the blocking ports can call it (docs/architecture.md, "Engines whose
drivers are async-only").

By default the portal owns a loop in a daemon thread of its own and each
blocking call is one ``run_coroutine_threadsafe`` hop onto it. An
``AsyncClient`` instead opens the engine on *its* event loop (``loop=``):
then :meth:`Portal.run` awaits the engine's coroutines directly, with no hop
at all, and the blocking calls the AsyncClient still makes from its worker
threads hop onto that loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ...errors import EngineError, EngineTimeout

T = TypeVar("T")


class Portal:
    """An event loop for one engine: its own (a daemon thread running it
    until :meth:`close`) or the caller's (``loop=``, never stopped here)."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._thread: threading.Thread | None = None
        self._closed = False
        if loop is not None:
            self.loop = loop
            return
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def owned(self) -> bool:
        """Whether the loop is the portal's own (stopped by :meth:`close`)."""
        return self._thread is not None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it. Raises what it raises,
        EngineTimeout after ``timeout`` seconds, EngineError once closed."""
        if self._closed or self.loop.is_closed() or (self.owned and not self._thread_alive()):
            coro.close()
            raise EngineError("the RabbitMQ engine is closed: open a new Client")
        try:
            self.ready()
        except EngineError:
            coro.close()
            raise
        if self._on_loop():
            coro.close()
            raise EngineError(
                "a blocking engine call was made from the engine's own event loop: it would "
                "wait for itself; use the AsyncClient's methods (or a thread)"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise _timeout(timeout) from None

    async def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Await ``coro`` from any event loop: directly when it is the
        portal's (no hop), else on the portal's loop (one hop, no thread)."""
        try:
            self.ready()
        except EngineError:
            coro.close()
            raise
        try:
            async with asyncio.timeout(timeout):
                if asyncio.get_running_loop() is self.loop:
                    return await coro  # no task, no hop: this loop is the engine's
                return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))
        except TimeoutError:
            raise _timeout(timeout) from None

    def ready(self) -> None:
        """Raise EngineError when nothing can run: the portal was closed, or
        the caller's loop it borrowed stopped (a call would otherwise wait
        for its timeout). Check before building a coroutine chain."""
        if self._closed:
            raise EngineError("the RabbitMQ engine is closed: open a new AsyncClient")
        if self.owned or (self.loop.is_running() and not self.loop.is_closed()):
            return
        raise EngineError(
            "the event loop this AsyncClient opened its engine on is no longer running: "
            "open the AsyncClient (async with) inside the loop that uses it"
        )

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:  # no loop running in this thread
            return False

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the loop and join its thread (idempotent); a caller's loop
        is left running (only this portal's use of it ends)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


def _timeout(seconds: float) -> EngineTimeout:
    return EngineTimeout(
        f"RabbitMQ did not answer within {seconds}s: check the server, or raise "
        "the URL option operation_timeout"
    )
