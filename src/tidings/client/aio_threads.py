"""The threads the asyncio face runs blocking calls on.

Never the event loop's default executor: it is shared with DNS resolution
(``getaddrinfo``) and other libraries, and has ``min(32, cpus + 4)``
threads, so six idle ``get(wait=3)`` on two cores made an unrelated
``publish`` queue behind them for 2.9 s. Two bounded pools instead: short
calls never share a thread with calls that wait for something to arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from ..config import AsyncConfig

R = TypeVar("R")


class Threads:
    """A pool for short calls and a pool for waits, sized by :class:`AsyncConfig`."""

    def __init__(self, config: AsyncConfig) -> None:
        self._calls = ThreadPoolExecutor(config.threads, thread_name_prefix="tidings-call")
        self._waits = ThreadPoolExecutor(config.waiting_threads, thread_name_prefix="tidings-wait")

    async def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a short blocking call (a publish, an ack, an admin operation)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._calls, partial(fn, *args, **kwargs))

    async def wait(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a call that may wait for something to arrive."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._waits, partial(fn, *args, **kwargs))

    def submit_wait(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> Future[R]:
        """Start a waiting call; its future outlives a cancelled caller."""
        return self._waits.submit(partial(fn, *args, **kwargs))

    def submit_call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> Future[R]:
        return self._calls.submit(partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop taking work; calls under way finish on their own."""
        self._calls.shutdown(wait=False)
        self._waits.shutdown(wait=False)
