"""The loop of one queue handler: leases messages, hands each lane (a FIFO
group, or a share of the batch) to the handler, acks what was handled,
nacks with a delay what must wait (the message alone waits; a FIFO group
waits behind it, Q4), parks what the lifecycle gives up on.

The engine's ``delivery_count`` is the durable delivery counter: it is
incremented when the message is leased, before the handler runs. Messages
leased together with one that kills the process are counted once too;
after that the loop leases one message at a time while redeliveries are
at the head, so only the culprit keeps counting.

Optional queue capabilities are used where the engine's ``Features``
declare them, and the loop degrades where they are absent (``amqp://``
has no ``release``): ``lease_extension`` keeps a slow handler's leases
(without it a handler must finish within the lease); ``nack_delay`` makes
a retry wait in the engine (without it the loop waits, up to half a lease,
then nacks at once); ``release`` lets a graceful stop give back what was
leased but not yet handed to the handler, uncounted (without it the loop
finishes everything it holds, as R4 says, rather than nack it: a nack
would count a delivery).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..client.client import Client
from ..errors import AlreadySettled, LeaseLost, TidingsError
from ..message import Delivery
from ..ports.failed import FailedStore
from ..tracing import traced
from .handlers import HandlerSpec, make_call
from .lanes import Lanes, Outcome
from .lifecycle import Lifecycle, Stop
from .transaction import as_list, engine_transaction

log = logging.getLogger("tidings.runtime")


def _round(d: Delivery) -> int:
    return d.delivery_count


class QueueLoop:
    """Runs one queue handler until ``stop`` is set (R4: it finishes the
    messages in hand, settles them, and stops leasing)."""

    def __init__(
        self, app: Any, spec: HandlerSpec, client: Client, store: FailedStore, stop: threading.Event
    ) -> None:
        assert spec.queue is not None
        self.app, self.spec, self.client, self.store, self.stop = app, spec, client, store, stop
        self.queue = spec.queue
        self.life = Lifecycle(app.name, spec, store, app.alerts, None)
        self.acked_in_tx: set[int] = set()  # transaction=: acked with the handler's writes
        self.tx = engine_transaction(spec, client.engine, self._ack_in, self._acked_in)
        call = traced(app.name, spec.name, spec.is_async, make_call(spec, self.tx))
        features = client.features
        self._extend = features.supports("lease_extension")
        self._nack_delay = features.supports("nack_delay")
        halt = stop.is_set if features.supports("release") else None
        self.lanes = Lanes(spec, call, self.life, halt)
        self.handled = 0
        self._pool = ThreadPoolExecutor(spec.concurrency) if spec.concurrency > 1 else None
        self._loop = asyncio.new_event_loop() if spec.is_async else None
        self._blocked_refresh = 0.0
        self._careful = True  # the first lease is a single message (see step)
        self._lease_s = client.queue(self.queue).lease_s  # QueueNotFound now, not in the loop

    def step(self) -> None:
        wait = self.life.breaker.open_until - time.monotonic()
        if wait > 0:  # the breaker is open: lease nothing meanwhile
            self.stop.wait(min(wait, 0.5))
            return
        self._refresh_blocked()
        size = 1 if self._careful else self.spec.max_in_flight
        got = self.client.get(self.queue, size, wait=0.5)
        if got:
            # A redelivery at the head may be a message that killed the
            # process holding it: lease one at a time until a fresh message
            # comes (an empty lease proves nothing: a dead process's leases
            # may not have run out yet), so only the culprit keeps counting.
            self._careful = any(d.delivery_count > 1 for d in got)
            try:
                self._handle(got)
            except (LeaseLost, AlreadySettled) as exc:  # only with transaction=
                # Rolled back with the handler's writes: the message comes back.
                log.warning("%s: %s", self.spec.name, exc)

    def _ack_in(self, conn: Any, message: Any) -> None:
        self.client.ack(as_list(message), connection=conn)

    def _acked_in(self, message: Any) -> None:
        self.acked_in_tx.update(d.id for d in as_list(message))

    def _handle(self, got: list[Delivery]) -> None:
        keeper = _LeaseKeeper(self.client, got if self._extend else [], self._lease_s)
        try:
            self._handle_leased(got)
        finally:
            keeper.stop()

    def _handle_leased(self, got: list[Delivery]) -> None:
        over = [d for d in got if self.life.over_limit(d.delivery_count)]
        acks: list[Delivery] = [
            d for d in over if self.life.park_unfinished(d, d.delivery_count) is None
        ]
        nacks: list[tuple[Delivery, float]] = [(d, 1.0) for d in over if d not in acks]
        lanes = self._lanes([d for d in got if not self.life.over_limit(d.delivery_count)])
        started = time.perf_counter()
        outcomes = self._run(lanes)
        self.life.metrics.observe(time.perf_counter() - started)
        for lane_acks, lane_nacks in outcomes:
            acks += lane_acks
            nacks += lane_nacks
        self.handled += len(acks)
        self.life.breaker.success(len(acks))
        self._settle(acks, nacks)
        self._release_unhandled(got, acks, nacks)

    def _lanes(self, got: list[Delivery]) -> list[list[Delivery]]:
        if not got:
            return []
        if any(d.group is not None for d in got):
            groups: dict[str | None, list[Delivery]] = {}
            for d in got:
                groups.setdefault(d.group, []).append(d)
            return list(groups.values())
        n = min(self.spec.concurrency, len(got))
        return [got[i::n] for i in range(n)]

    def _run(self, lanes: list[list[Delivery]]) -> list[tuple[list[Delivery], list[Any]]]:
        if self._loop is not None:
            return self._loop.run_until_complete(self._arun(lanes))
        if self._pool is None or len(lanes) <= 1:
            return [self._lane(lane) for lane in lanes]
        return list(self._pool.map(self._lane, lanes))

    def _lane(self, lane: list[Delivery]) -> tuple[list[Delivery], list[Any]]:
        run = self.lanes.batch if self.spec.batch else self.lanes.sequence
        acks: list[Delivery] = []
        nacks: list[tuple[Delivery, float]] = []
        while lane:
            out = run(lane, _round)
            if self._split(lane, out, acks, nacks):
                break
            lane = lane[out.handled + 1 :]
        return acks, nacks

    async def _arun(self, lanes: list[list[Delivery]]) -> list[tuple[list[Delivery], list[Any]]]:
        return list(await asyncio.gather(*(self._alane(lane) for lane in lanes)))

    async def _alane(self, lane: list[Delivery]) -> tuple[list[Delivery], list[Any]]:
        run = self.lanes.abatch if self.spec.batch else self.lanes.asequence
        acks: list[Delivery] = []
        nacks: list[tuple[Delivery, float]] = []
        while lane:
            out = await run(lane, _round)
            if self._split(lane, out, acks, nacks):
                break
            lane = lane[out.handled + 1 :]
        return acks, nacks

    @staticmethod
    def _split(lane: list[Delivery], out: Outcome, acks: list[Delivery], nacks: list[Any]) -> bool:
        """Sort a lane's outcome into acks and nacks; True when the lane is done."""
        acks.extend(lane[: out.handled])
        if out.stop is None:
            return True
        delay = max(0.0, out.stop.resume_at - time.monotonic())
        if out.stop.whole:  # the breaker opened: everything left waits
            nacks.extend((d, delay) for d in lane[out.handled :])
            return True
        nacks.append((lane[out.handled], delay))
        return False

    def _settle(self, acks: list[Delivery], nacks: list[tuple[Delivery, float]]) -> None:
        if self.acked_in_tx:
            acks = [d for d in acks if d.id not in self.acked_in_tx]
            self.acked_in_tx.clear()
        try:
            if acks:
                self.client.ack(acks)
            for d, delay in nacks:
                self._nack(d, delay)
        except TidingsError as exc:  # at-least-once: unsettled messages come back
            log.warning("%s: settling deliveries failed: %s", self.spec.name, exc)

    def _release_unhandled(
        self, got: list[Delivery], acks: list[Delivery], nacks: list[tuple[Delivery, float]]
    ) -> None:
        """On shutdown (``release`` supported): give back, uncounted, what
        the lanes stopped before handing to the handler."""
        settled = {d.id for d in acks} | {d.id for d, _ in nacks}
        rest = [d for d in got if d.id not in settled]
        if not rest:
            return
        try:
            self.client.release(rest)
        except TidingsError as exc:  # their leases run out and they come back then
            log.warning("%s: releasing unhandled deliveries failed: %s", self.spec.name, exc)

    def _nack(self, d: Delivery, delay: float) -> None:
        if delay > 0 and not self._nack_delay:
            # The engine cannot hold it back: wait here, within the lease.
            self.stop.wait(min(delay, self._lease_s / 2))
            delay = 0.0
        self.client.nack(d, delay=delay)

    def _refresh_blocked(self) -> None:
        now = time.monotonic()
        if now - self._blocked_refresh >= self.app.blocked_refresh_s:
            self._blocked_refresh = now
            try:
                self.life.blocked = self.store.blocked_keys(self.app.name, self.spec.name)
            except TidingsError as exc:
                log.warning("reading blocked keys failed: %s", exc)

    def close(self) -> None:
        if self.tx is not None:
            self.tx.close()
        if self._pool is not None:
            self._pool.shutdown()
        if self._loop is not None:
            self._loop.close()


class _LeaseKeeper:
    """Extends the leases of a batch being handled every half lease, so a
    slow handler's messages are not delivered to another consumer meanwhile
    (a handler that dies stops extending: its messages come back)."""

    def __init__(self, client: Client, deliveries: list[Delivery], lease_s: float) -> None:
        self.client, self.deliveries, self.lease_s = client, deliveries, lease_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if deliveries:
            self._thread = threading.Thread(target=self._run, name="tidings-lease", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.lease_s / 2):
            for d in self.deliveries:
                try:
                    self.client.extend_lease(d, self.lease_s)
                except TidingsError:
                    pass  # settled meanwhile, or the lease was already lost

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


__all__ = ["QueueLoop", "Stop"]
