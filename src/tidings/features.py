"""What an engine guarantees.

Drives early :class:`~tidings.errors.UnsupportedFeature` errors, test skips
in the conformance suite, and the guarantees matrix in the docs. Each field
names the DESIGN.md contract it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

Support = Literal["native", "emulated", "unsupported"]


@dataclass(frozen=True)
class Features:
    """One engine's support for each contract."""

    durable_append: Support = "native"  # L1
    dense_offsets: Support = "native"  # L2
    consumer_groups: Support = "native"  # L4, L5
    seek_by_timestamp: Support = "native"  # L5
    retention: Support = "native"  # L6
    compaction: Support = "native"  # L6
    multi_process: Support = "native"  # several processes share the engine
    transactional_publish: Support = "native"  # append in the caller's own transaction (O1)
    transactional_consume: Support = "native"  # commit / ack in the caller's transaction (R5)
    queues: Support = "native"  # Q1, Q2
    dedup: Support = "native"  # Q3
    fifo_groups: Support = "native"  # Q4
    delays: Support = "native"  # Q5
    exchanges: Support = "native"  # Q6
    topic_bindings: Support = "native"  # a topic feeding queues atomically

    def supports(self, name: str) -> bool:
        """True unless the feature is declared unsupported."""
        return bool(getattr(self, name) != "unsupported")

    def as_dict(self) -> dict[str, str]:
        """``{feature: support}`` for the docs matrix and ``--json`` output."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
