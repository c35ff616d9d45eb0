"""What one thread hop costs against a direct await (docs/architecture.md,
"Sync and async"). Run: ``python benchmarks/async_hops.py``.

Each row: mean µs per sequential call of a call that does no work, so the
figure is the hop alone. ``driver`` stands in for an async driver call: one
suspension and one wake-up on the loop (an I/O wait resumed by the loop).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

N = 20_000


async def _nothing() -> int:
    return 1


async def _driver() -> int:
    await asyncio.sleep(0)  # one suspension: the loop resumes us, as after I/O
    return 1


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(N):
            await call()
        best.append((time.perf_counter() - start) / N * 1e6)
    return statistics.median(best)


def _portal() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


async def main() -> None:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(4)
    portal, thread = _portal()

    def via_portal() -> int:
        return asyncio.run_coroutine_threadsafe(_driver(), portal).result()

    rows = {
        "direct await (no suspension)": await _timed(_nothing),
        "direct await of a driver-like call": await _timed(_driver),
        "run_in_executor hop (blocking twin)": await _timed(
            lambda: loop.run_in_executor(pool, int)
        ),
        "portal hop (app loop -> driver loop)": await _timed(
            lambda: asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_driver(), portal))
        ),
        "two hops (executor -> portal loop)": await _timed(
            lambda: loop.run_in_executor(pool, via_portal)
        ),
    }
    base = rows["direct await of a driver-like call"]
    for name, us in rows.items():
        print(f"{name:40s} {us:8.2f} µs/call  ({us / base:5.1f}x driver await)")
    portal.call_soon_threadsafe(portal.stop)
    thread.join()
    pool.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
