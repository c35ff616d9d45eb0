"""What an engine guarantees.

Drives early :class:`~tidings.errors.UnsupportedFeature` errors, test skips
in the conformance suite, and the guarantees matrix in the docs. Each field
names the DESIGN.md contract it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

Support = Literal["native", "emulated", "unsupported"]
#: What "acknowledged" means (L1): ``fsync`` = on disk on one machine before
#: the ack; ``quorum`` = replicated to a majority of the engine's nodes before
#: the ack, not fsynced per message (RabbitMQ quorum queues: a message is lost
#: only if a majority of nodes lose power within the same flush interval);
#: ``os`` = handed to the OS page cache; ``none`` = process memory only.
Durability = Literal["fsync", "quorum", "os", "none"]

#: The optional queue capabilities, each a Protocol in tidings.ports.queue.
QUEUE_CAPABILITIES = (
    "lease_extension",
    "nack_delay",
    "dead_letter_admin",
    "next_visible",
    "release",
)


@dataclass(frozen=True)
class Features:
    """One engine's support for each contract."""

    logs: Support = "native"  # the log side as a whole (topics, L1-L6)
    durable_append: Support = "native"  # L1
    dense_offsets: Support = "native"  # L2
    append_offsets: Support = "native"  # L2: acks name the offset (else None: known when read)
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
    durability: Durability = "fsync"  # L1, Q1: what an acknowledged write survives
    failed_events: Support = "native"  # R2, R3: failed events (FailedEventsCapable)
    # optional queue capabilities (Protocols in tidings.ports.queue)
    lease_extension: Support = "native"  # extend a lease (LeaseExtension)
    nack_delay: Support = "native"  # nack with a delay (settle with delay_s > 0)
    dead_letter_admin: Support = "native"  # browse / redrive / purge dead letters by id
    next_visible: Support = "native"  # when the next delayed message is due (VisibilityClock)
    release: Support = "native"  # give back a lease uncounted (LeaseRelease)

    def supports(self, name: str) -> bool:
        """True unless the feature is declared unsupported (``durability``
        is a level, not a support: always true)."""
        return bool(getattr(self, name) != "unsupported")

    def as_dict(self) -> dict[str, str]:
        """``{feature: support}`` for the docs matrix and ``--json`` output."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The docs' name for each field: the contract it stands for first.
LABELS: dict[str, str] = {
    "logs": "logs: topics, partitions, offsets",
    "durable_append": "L1 durable append",
    "dense_offsets": "L2 dense offsets",
    "append_offsets": "L2 acknowledgements name the offset",
    "consumer_groups": "L4 consumer groups, fencing",
    "seek_by_timestamp": "L5 seek by time",
    "retention": "L6 retention (age, bytes)",
    "compaction": "L6 compaction",
    "multi_process": "several processes share the engine",
    "transactional_publish": "O1 append / publish in the caller's transaction",
    "transactional_consume": "R5 commit / ack in the caller's transaction",
    "queues": "Q1, Q2 queues, leases, dead letters",
    "dedup": "Q3 dedup by idempotency key",
    "fifo_groups": "Q4 FIFO groups",
    "delays": "Q5 delays, TTL",
    "exchanges": "Q6 exchanges, bindings",
    "topic_bindings": "a topic feeding queues atomically",
    "durability": "what an acknowledged write survives",
    "failed_events": "R2, R3 failed events, triage (the runtime)",
    "lease_extension": "extend a lease",
    "nack_delay": "nack with a delay",
    "dead_letter_admin": "browse, redrive, purge dead letters by id",
    "next_visible": "when the next delayed message is due",
    "release": "give a lease back uncounted",
}


def matrix_markdown(engines: Mapping[str, Features | None]) -> str:
    """The engine × feature table of the docs, from each engine's declared
    ``Features`` (``None``: the engine's driver is not installed)."""
    names = list(engines)
    lines = [
        "| feature | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for f in fields(Features):
        cells = [
            "not installed" if engines[n] is None else getattr(engines[n], f.name) for n in names
        ]
        lines.append(f"| {LABELS.get(f.name, f.name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
