"""A consumer's membership in a group: join, heartbeat thread, leave; and
commits in the caller's own transaction.

The heartbeat thread only talks to the coordinator state; partitions move
in the consumer's own thread (``Consumer.poll``), which commits what it
gives up before the partition is released, so a partition never has two
live owners.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..backoff import Backoff
from ..config import GroupConfig
from ..errors import FencedError, TidingsError, UnsupportedFeature
from ..groups.coordinator import Member, MemberView
from ..message import TopicPartition
from ..ports.engine import Engine
from ..ports.log import TransactionalCommit

log = logging.getLogger("tidings.consumer")
_FAST = 0.05  # heartbeat period while partitions are on their way to us


class Membership:
    """Keeps one member alive in a group."""

    def __init__(self, engine: Engine, group: str, topics: tuple[str, ...], config: GroupConfig):
        self.engine, self.group, self.topics, self.config = engine, group, topics, config
        self.member_id = ""
        self.view: MemberView | None = None
        self.fenced = False
        self.last_ok = 0.0
        self._released: set[TopicPartition] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def join(self) -> MemberView:
        """Join with a fresh member id (a fenced member never comes back)."""
        self.member_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        now = time.time()
        member = Member(
            self.member_id, self.topics, self.config.session_timeout_s, now, self.member_id
        )
        view = self.engine.groups.join(self.group, member, self.config.strategy, now)
        with self._lock:
            self.view, self.fenced, self.last_ok = view, False, now
            self._released.clear()
        self._start()
        return view

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="tidings-heartbeat", daemon=True
            )
            self._thread.start()

    def release(self, tps: set[TopicPartition]) -> None:
        """Hand partitions back (after committing them) at the next heartbeat."""
        with self._lock:
            self._released |= tps

    def heartbeat(self) -> MemberView:
        """One heartbeat now; raises FencedError if the session had expired."""
        with self._lock:
            released = frozenset(self._released)
        now = time.time()
        member_id = self.member_id
        view = self.engine.groups.heartbeat(self.group, member_id, released, now)
        with self._lock:
            self._released -= released
            self.view, self.last_ok = view, now
        return view

    def _loop(self) -> None:
        retry = Backoff(_FAST, self.config.heartbeat_interval_s)
        failing = False
        while not self._stop.is_set():
            if self._stop.wait(retry.next() if failing else self._period()):
                return
            try:
                self.heartbeat()
                failing = False
                retry.reset()
            except FencedError:
                self.fenced = True
                return
            except TidingsError as exc:  # engine hiccup: keep trying until the session ends
                log.warning("heartbeat for group %s failed: %s", self.group, exc)
                failing = True  # retry sooner than a period, members spread out

    def _period(self) -> float:
        view = self.view
        if view is None or view.pending or view.revoke:
            return _FAST
        return self.config.heartbeat_interval_s

    def session_lapsed(self) -> bool:
        """True if no heartbeat succeeded for a whole session timeout (e.g. the
        process was stopped): the member may have been fenced meanwhile."""
        return time.time() - self.last_ok > self.config.session_timeout_s

    def leave(self) -> None:
        """Stop heartbeating and leave the group (on failure, only log: the
        session simply expires instead)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        member_id = self.member_id
        if member_id and not self.fenced:
            try:
                self.engine.groups.leave(self.group, member_id)
            except TidingsError as exc:
                log.warning("leaving group %s failed: %s", self.group, exc)


def commit_in(
    engine: Engine,
    connection: Any,
    group: str,
    member_id: str | None,
    offsets: Mapping[TopicPartition, int],
) -> None:
    """Commit ``offsets`` in the caller's open transaction on ``connection``
    (R5; fenced in it, L4); UnsupportedFeature where the engine cannot."""
    log = engine.log
    if not isinstance(log, TransactionalCommit) or not engine.features.supports(
        "transactional_consume"
    ):
        raise UnsupportedFeature(
            f"{engine.url}: cannot commit in your transaction; use a SQL engine"
        )
    log.commit_in(connection, group, member_id, offsets, time.time())
