"""Peers: what a Python user would otherwise run, measured in the same run.

Each peer opens a :class:`Session` for the log or the queue workloads; one
runner (:func:`measure`) times every peer alike: durable publishes in
batches of 100 until the record budget or ``--peer-seconds`` is spent, then
consumption with acks/commits of what was published. A peer whose service
is down yields lines with ``error`` and the run goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ...errors import EngineTimeout
from ..harness import Bench, Line, Stopwatch, line, rate

BATCH = 100  # the batch size DESIGN.md quotes the peers' figures at


class Session(Protocol):
    """One peer connection holding one fresh stream/queue/table."""

    def append(self, values: list[bytes]) -> None:
        """Store ``values`` durably (as durably as the peer offers) in one batch."""

    def consume(self, max_records: int) -> int:
        """Read up to ``max_records`` and ack/commit them; how many were read."""

    def close(self) -> None:
        """Delete what the session created and disconnect."""


Opener = Callable[[str], Session]  # fresh unique name -> session


@dataclass(frozen=True)
class Peer:
    """A peer engine: its name, and how to open a log or queue session."""

    name: str
    log: Opener | None = None
    queue: Opener | None = None


def measure(
    bench: Bench, peer: Peer, opener: Opener, names: tuple[str, str], record_bytes: int
) -> Iterator[Line]:
    """``names`` = (publish workload, consume workload)."""
    try:
        session = opener(f"bench_{uuid.uuid4().hex[:10]}")
    except Exception as exc:  # the service is down or refused us: report, go on
        for name in names:
            yield line(name, peer.name, record_bytes, error=f"{type(exc).__name__}: {exc}")
        return
    done: set[str] = set()
    try:
        for ln in _timed(bench, peer.name, session, names, record_bytes):
            done.add(ln["workload"])
            yield ln
    except Exception as exc:  # a peer failing mid-run is a result too
        for name in names:
            if name not in done:
                yield line(name, peer.name, record_bytes, error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            session.close()


def _timed(
    bench: Bench, engine: str, session: Session, names: tuple[str, str], record_bytes: int
) -> Iterator[Line]:
    budget = bench.size(1_000_000, 2_000)
    seconds = bench.settings.peer_seconds
    values = [bytes([65 + i % 26]) * record_bytes for i in range(BATCH)]
    published = 0
    with Stopwatch() as sw:
        while published < budget and (published == 0 or sw.elapsed < seconds):
            session.append(values)
            published += BATCH
    yield line(
        names[0],
        engine,
        record_bytes,
        records_per_s=rate(published, sw.seconds),
        records=published,
        batch=BATCH,
    )
    consumed = 0
    with Stopwatch() as sw:
        while consumed < published and (consumed == 0 or sw.elapsed < seconds):
            got = session.consume(BATCH)
            if not got:
                raise EngineTimeout(f"{engine}: only {consumed} of {published} came back")
            consumed += got
    yield line(
        names[1],
        engine,
        record_bytes,
        records_per_s=rate(consumed, sw.seconds),
        records=consumed,
        batch=BATCH,
    )


# name, module under peers/, its log opener, its queue opener
_PEERS = (
    ("rabbitmq", "rabbitmq", "open_session", "open_session"),
    ("nats-jetstream", "nats", "open_log", "open_queue"),
    ("redis-streams", "redis_streams", "open_session", "open_session"),
    ("postgresql-table", "postgresql", "open_log", "open_queue"),
    ("persist-queue", "embedded", None, "open_persist_queue"),
    ("litequeue", "embedded", None, "open_litequeue"),
)


def all_peers() -> list[Peer]:
    """Every peer. Nothing is imported here: a peer's module (and its
    driver) is imported when its session opens, so a missing driver is an
    ``error`` line for that peer only, and a plain install (no extras) runs
    the tidings workloads."""
    return [
        Peer(name, _lazy(module, log), _lazy(module, queue))
        for name, module, log, queue in _PEERS
    ]


def _lazy(module: str, opener: str | None) -> Opener | None:
    """``opener`` of peer module ``module``, imported on first call."""
    if opener is None:
        return None

    def open_session(name: str) -> Session:
        fn: Opener = getattr(importlib.import_module(f"{__name__}.{module}"), opener)
        return fn(name)

    return open_session
