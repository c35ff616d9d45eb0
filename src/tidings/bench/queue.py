"""``tidings bench queue``: the queue workloads.

``TIDINGS_WORKLOADS`` is the registry of tidings-side queue workloads
(``queue.publish.batched``, ``queue.consume.ack``, ``queue.publish.single``,
``queue.publish.single.async``, ``queue.publish.concurrent``, ``queue.backlog.flatness``): each is a
:class:`~.harness.Workload` whose function takes the :class:`~.harness.Bench`
and yields lines made with ``bench.line(name, 256, records_per_s=...)``
(or ``ratio=`` against ``bench.baselines["fdatasync_per_s"]``, measured
first in the same run by ``disk.fdatasync``). The queue engine's module
appends to it; the peers below run with ``--peers``; with ``--url amqp://``
raw aio-pika runs beside them (:mod:`.raw`).
"""

from __future__ import annotations

from collections.abc import Iterator

from .disk import disk_fdatasync
from .harness import Bench, Line, Workload
from .peers import Peer, all_peers, measure
from .queue_tidings import WORKLOADS as QUEUE_WORKLOADS
from .raw import QUEUE as RAW
from .raw import beside
from .space import drain_space

BODY_BYTES = 256  # DESIGN.md: queue workloads use 256-byte bodies
PUBLISH, CONSUME = "queue.publish.batched", "queue.consume.ack"
COMPARED = (PUBLISH, CONSUME)
# With --url amqp://: raw-aio-pika runs these too (and the single publishes).
RATIOS = (*COMPARED, "queue.publish.single", "queue.publish.single.async")

TIDINGS_WORKLOADS: list[Workload] = [*QUEUE_WORKLOADS, Workload("queue.drain.space", drain_space)]


def _peer_workload(peer: Peer) -> Workload:
    def run(bench: Bench) -> Iterator[Line]:
        assert peer.queue is not None
        yield from measure(bench, peer, peer.queue, COMPARED, BODY_BYTES)

    return Workload(f"queue.peer.{peer.name}", run, peer=True)


def workloads() -> list[Workload]:
    """The disk baseline, tidings' queue workloads (each followed by the raw
    client doing the same work, on amqp:// URLs), then every queue peer."""
    peers = [_peer_workload(p) for p in all_peers() if p.queue is not None]
    ours = beside(TIDINGS_WORKLOADS, RAW)
    return [Workload("disk.fdatasync", disk_fdatasync), *ours, *peers]
