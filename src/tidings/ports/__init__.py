"""The Protocols the core programs against; engines implement them."""

from .engine import Engine, Waiter
from .log import LogEngine, PartitionInfo, RecordColumns
from .queue import OutgoingMessage, QueueEngine, Settlement

__all__ = [
    "Engine",
    "LogEngine",
    "OutgoingMessage",
    "PartitionInfo",
    "QueueEngine",
    "RecordColumns",
    "Settlement",
    "Waiter",
]
