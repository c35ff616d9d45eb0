"""Consumer-group coordination, engine-neutral.

Engines store a :class:`GroupState` and apply the pure transitions of
:mod:`.coordinator` atomically (one transaction or lock); the assignment
strategies live in :mod:`.assignors`. So every engine rebalances and fences
the same way.
"""

from .assignors import ASSIGNORS, assign_range, assign_roundrobin, assign_sticky
from .coordinator import GroupState, Member, MemberView

__all__ = [
    "ASSIGNORS",
    "GroupState",
    "Member",
    "MemberView",
    "assign_range",
    "assign_roundrobin",
    "assign_sticky",
]
