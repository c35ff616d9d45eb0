"""What a handler may return instead of raising: control flow, not errors."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError


@dataclass(frozen=True)
class Retry:
    """Try this message again after ``delay`` seconds (its partition, or for
    a queue the message alone, waits; everything else keeps flowing). Counts
    as one delivery attempt: past the policy's limit the message is parked."""

    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ConfigurationError(f"Retry delay must be >= 0 seconds, got {self.delay}")


@dataclass(frozen=True)
class Reject:
    """Do not retry: park the message as a failed event at once, with
    ``reason`` as its message (e.g. a payload that can never succeed)."""

    reason: str = "rejected by the handler"
