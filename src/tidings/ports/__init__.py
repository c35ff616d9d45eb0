"""The Protocols the core programs against; engines implement them."""

from .cursor import Cursor
from .engine import Engine, Waiter
from .groups import GroupCoordinator
from .log import LogEngine, PartitionInfo, RecordColumns
from .queue import OutgoingMessage, QueueEngine, Settlement

__all__ = [
    "Cursor",
    "Engine",
    "GroupCoordinator",
    "LogEngine",
    "OutgoingMessage",
    "PartitionInfo",
    "QueueEngine",
    "RecordColumns",
    "Settlement",
    "Waiter",
]
