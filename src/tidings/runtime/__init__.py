"""The consumer runtime: an App with decorated handlers, ordered concurrency,
the failure lifecycle, failed events and triage, and the inbox (R1–R5).

See docs/runtime.md."""

from .app import App
from .handlers import HandlerContext
from .inbox import Inbox
from .outcomes import Reject, Retry
from .policy import BreakerPolicy, RetryPolicy
from .runner import Runner

__all__ = [
    "App",
    "BreakerPolicy",
    "HandlerContext",
    "Inbox",
    "Reject",
    "Retry",
    "RetryPolicy",
    "Runner",
]
