"""Retry policies and the circuit breaker's settings (R2), validated at
definition time.

Defaults (also in docs/runtime.md): 2 immediate retries; then 5 delayed
rounds with exponential backoff from 1 s, capped at 60 s, full jitter; then
park the message as a failed event and go on. Payloads that fail
validation (``SerializationError``) are parked at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigurationError, SerializationError
from .outcomes import Reject, Retry

Exhausted = Literal["park", "block_key", "block"]
#: A domain policy: given the exception and the handler context, return
#: ``Retry(delay)`` or ``Reject(reason)`` to decide, or ``None`` for the
#: policy's lifecycle.
Classifier = Callable[[BaseException, Any], "Retry | Reject | None"]


@dataclass(frozen=True)
class RetryPolicy:
    """How one handler treats a failing message.

    ``immediate``: extra tries at once (no delay). ``delayed``: rounds after
    that, each after a pause of the partition (or of the message, on a
    queue) of ``backoff * 2**n`` seconds capped at ``backoff_max``, with full
    jitter (a uniformly random part of it, so failing consumers do not
    retry in lock-step). ``on_exhausted``: ``"park"`` (store a failed event
    and go on), ``"block_key"`` (park it and every later message of its key
    until triage resolves them; other keys flow) or ``"block"`` (never skip:
    keep retrying every ``backoff_max`` and alert). ``park_at_once``:
    exception types parked without retrying.

    Raises ConfigurationError for negative counts or delays.
    """

    immediate: int = 2
    delayed: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    on_exhausted: Exhausted = "park"
    park_at_once: tuple[type[BaseException], ...] = (SerializationError,)

    def __post_init__(self) -> None:
        for name in ("immediate", "delayed"):
            if getattr(self, name) < 0:
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be >= 0, got {getattr(self, name)}"
                )
        if self.backoff < 0 or self.backoff_max < self.backoff:
            raise ConfigurationError(
                "RetryPolicy needs 0 <= backoff <= backoff_max, "
                f"got {self.backoff} and {self.backoff_max}"
            )
        if self.on_exhausted not in ("park", "block_key", "block"):
            raise ConfigurationError(
                "RetryPolicy.on_exhausted must be park, block_key or block, "
                f"not {self.on_exhausted!r}"
            )

    @property
    def rounds(self) -> int:
        """Deliveries before the policy gives up: the first and the delayed ones."""
        return 1 + self.delayed

    def delay(self, round_: int) -> float:
        """The pause after failed round ``round_`` (1-based), with full jitter."""
        ceiling = min(self.backoff_max, self.backoff * 2 ** max(0, round_ - 1))
        return random.uniform(0, ceiling)


@dataclass(frozen=True)
class BreakerPolicy:
    """Pause the whole handler when most messages fail across keys (an
    outage) instead of parking them all.

    Opens when, within ``window`` seconds, at least ``min_failures`` rounds
    failed, on at least ``min_keys`` different keys (or partitions), and
    they are at least ``ratio`` of the outcomes. Open, the handler fetches
    nothing for ``pause`` seconds (doubling up to ``pause_max`` while the
    first message after a pause still fails); nothing is parked meanwhile.
    ``enabled=False`` turns it off."""

    ratio: float = 0.5
    min_failures: int = 10
    min_keys: int = 2
    window: float = 30.0
    pause: float = 5.0
    pause_max: float = 60.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ConfigurationError(f"BreakerPolicy.ratio must be in (0, 1], got {self.ratio}")
        if self.min_failures < 1 or self.min_keys < 1:
            raise ConfigurationError("BreakerPolicy.min_failures and min_keys must be >= 1")
        if self.window <= 0 or self.pause <= 0 or self.pause_max < self.pause:
            raise ConfigurationError("BreakerPolicy needs window > 0 and 0 < pause <= pause_max")


@dataclass(frozen=True)
class Policies:
    """A handler's default policy, overrides per exception type (the first
    entry the exception is an instance of wins), and an optional domain
    classifier consulted first."""

    default: RetryPolicy = field(default_factory=RetryPolicy)
    by_exception: Mapping[type[BaseException], RetryPolicy] = field(default_factory=dict)
    classify: Classifier | None = None
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def __post_init__(self) -> None:
        for exc_type, policy in self.by_exception.items():
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise ConfigurationError(f"policy keys must be exception types, not {exc_type!r}")
            if not isinstance(policy, RetryPolicy):
                raise ConfigurationError(f"policy for {exc_type.__name__} must be a RetryPolicy")

    def for_exception(self, exc: BaseException) -> RetryPolicy:
        for exc_type, policy in self.by_exception.items():
            if isinstance(exc, exc_type):
                return policy
        return self.default
