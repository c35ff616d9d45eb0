"""Testing helpers shipped with tidings: the conformance suite every engine
passes, and the ``TIDINGS_REQUIRE_ENGINES`` rule for engines that need a
service (see :mod:`tidings.testing.pytest_plugin`)."""

from ._base import FAST_GROUP, expire_sessions, poll_until, read_all
from ._queues import QueueContract
from ._runtime import FailedEventsContract
from .conformance import LogContract
from .pytest_plugin import require_engine, required_engines, service_reachable

__all__ = [
    "FAST_GROUP",
    "FailedEventsContract",
    "LogContract",
    "QueueContract",
    "expire_sessions",
    "poll_until",
    "read_all",
    "require_engine",
    "required_engines",
    "service_reachable",
]
