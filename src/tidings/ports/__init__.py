"""The Protocols the core programs against; engines implement them."""

from .engine import Engine, Waiter
from .log import LogEngine, PartitionInfo, RecordColumns

__all__ = ["Engine", "LogEngine", "PartitionInfo", "RecordColumns", "Waiter"]
