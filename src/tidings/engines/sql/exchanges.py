"""Exchanges and bindings (Q6): one publish copied to every bound queue in
one transaction. Routing itself is the engine-neutral ``tidings.routing``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...config import validate_name
from ...errors import AlreadyExists, NotFoundError, TopicNotFound
from ...ports.queue import OutgoingMessage
from ...routing import Binding, check_kind, route
from .database import Writer
from .forward import binding_name
from .general import publish_in
from .queue_rows import require


class ExchangeStore:
    """The exchange half of :class:`~tidings.engines.sql.queue.SqlQueues`."""

    _w: Writer
    _now: Callable[[], int]

    def declare_exchange(self, name: str, kind: str) -> None:
        validate_name("exchange", name)
        check_kind(kind)

        def txn(conn: Any) -> None:
            # Insert-or-nothing, then compare: concurrent declarers all succeed.
            conn.execute(
                "INSERT INTO exchanges(name, kind) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
                (name, kind),
            )
            existing = _kind(conn, name)
            if existing != kind:
                raise AlreadyExists(f"exchange {name!r} exists with kind {existing!r}")

        self._w.run(txn)

    def bind(self, exchange: str, queue: str, key: str, weight: int) -> None:
        def txn(conn: Any) -> None:
            _kind(conn, exchange)
            require(conn, queue)
            conn.execute(
                "INSERT INTO bindings(exchange, queue, key, weight) VALUES (?,?,?,?) "
                "ON CONFLICT(exchange, queue, key) DO UPDATE SET weight=excluded.weight",
                (exchange, queue, key, weight),
            )

        self._w.run(txn)

    def bind_topic(self, topic: str, queue: str) -> None:
        def txn(conn: Any) -> None:
            if conn.execute("SELECT 1 FROM topics WHERE name=?", (topic,)).fetchone() is None:
                raise TopicNotFound(f"topic {topic!r} does not exist")
            require(conn, queue)
            conn.execute(
                "INSERT INTO bindings(exchange, queue, key, weight) VALUES (?,?,'',1) "
                "ON CONFLICT(exchange, queue, key) DO NOTHING",
                (binding_name(topic), queue),
            )

        self._w.run(txn)

    def publish_exchange(
        self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]
    ) -> dict[str, list[int]]:
        def txn(conn: Any) -> dict[str, list[int]]:
            kind = _kind(conn, exchange)
            rows = conn.execute(
                "SELECT queue, key, weight FROM bindings WHERE exchange=?", (exchange,)
            ).fetchall()
            targets = route(kind, [Binding(*r) for r in rows], routing_key)
            now = self._now()
            return {q: publish_in(conn, q, messages, now) for q in targets}

        # The channels are known only after routing: wake every queue bound here.
        queues = self._bound_queues(exchange)
        return self._w.run(
            txn,
            channels=tuple("queue:" + q for q in queues),
            locks=tuple(("queue", q) for q in queues),
        )

    def _bound_queues(self, exchange: str) -> list[str]:
        def txn(conn: Any) -> list[str]:
            rows = conn.execute("SELECT DISTINCT queue FROM bindings WHERE exchange=?", (exchange,))
            return [r[0] for r in rows.fetchall()]

        return self._w.run(txn, fsync=False)


def _kind(conn: Any, exchange: str) -> str:
    row = conn.execute("SELECT kind FROM exchanges WHERE name=?", (exchange,)).fetchone()
    if row is None:
        raise NotFoundError(
            f"exchange {exchange!r} does not exist: declare it with client.declare_exchange"
        )
    return str(row[0])
