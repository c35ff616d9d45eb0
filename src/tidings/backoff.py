"""Retry delays with full jitter, for every backoff loop in tidings.

Without jitter, clients that failed together (a database restart) retry
together, in lock-step, and hit the engine in waves. "Full jitter" draws
each delay uniformly between 0 and the exponential ceiling
``min(cap, base * 2**attempt)``: the retries spread over the whole window,
which AWS measured as the least total work for the engine among the common
schemes (exponential backoff and jitter, Marc Brooker, 2015)::

    backoff = Backoff(base=0.05, cap=1.0)
    while True:
        try:
            return call()
        except EngineUnavailable:
            time.sleep(backoff.next())
"""

from __future__ import annotations

import random

from .errors import ConfigurationError

_RNG = random.Random()  # not the global one: seeding it elsewhere does not sync clients


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random = _RNG) -> float:
    """A delay in ``[0, min(cap, base * 2**attempt)]`` seconds, uniformly.

    Raises ConfigurationError for a negative ``attempt``, ``base`` or ``cap``."""
    if attempt < 0 or base < 0 or cap < 0:
        raise ConfigurationError(
            f"backoff needs attempt, base and cap >= 0, got {attempt}, {base}, {cap}"
        )
    ceiling = cap if attempt >= 64 else min(cap, base * 2.0**attempt)  # 2**64: cap anyway
    return rng.uniform(0.0, ceiling)


class Backoff:
    """Successive full-jitter delays for one retry loop; :meth:`reset` after
    a success. Raises ConfigurationError for a negative ``base`` or ``cap``."""

    __slots__ = ("_attempt", "_base", "_cap", "_rng")

    def __init__(self, base: float, cap: float, rng: random.Random = _RNG) -> None:
        if base < 0 or cap < 0:
            raise ConfigurationError(f"backoff needs base and cap >= 0, got {base}, {cap}")
        self._base, self._cap, self._rng = base, cap, rng
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next retry (seconds); each call widens the window."""
        delay = full_jitter(self._attempt, self._base, self._cap, self._rng)
        self._attempt += 1
        return delay

    def ceiling(self) -> float:
        """The largest delay the next :meth:`next` can return."""
        return min(self._cap, self._base * 2.0 ** min(self._attempt, 64))

    def reset(self) -> None:
        self._attempt = 0
