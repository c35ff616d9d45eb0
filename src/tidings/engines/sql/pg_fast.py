"""The PostgreSQL one-statement path of the queue store.

On PostgreSQL a queue call is dominated by round trips, not by work: a
get+ack in ``BEGIN`` … ``COMMIT`` transactions took 13 of them (~0.16 ms
each) for ~0.3 ms of server time per 100 messages (measured). This path
does the common case of each call as a single self-committing statement —
one round trip — built from data-modifying CTEs:

* a publish reserves ids and stores batch rows (``batched.py``), or one
  message row for a single message (durable: the statement commits with
  ``synchronous_commit`` on; the wake-up goes once it has committed);
* a claim leases a range of the oldest batch row, unless the queue has
  message rows ready or range leases that ran out;
* an ack of one claim's deliveries deletes the live range leases it
  covers whole, and the leased message rows it names (outside FIFO
  queues, whose acks promote the group's next message).

The statements run on the engine's pooled autocommit connections, beside
the writer (no transaction to open, so no queueing behind the group
commit). Claims and acks turn ``synchronous_commit`` off for their own
statement, as the general path does for leases and acks (a crash of the
server may forget them: a redelivery, never a loss).

The queue facade (``queue.py``) sends an operation here when the queue's
cached settings say one statement may do it. What a statement finds it
cannot do, this path finishes itself on the general path (``general.py``,
the reference): the message rows or expired ranges a claim must serve
first, the acks a statement could not settle, and any call whose cached
queue id no longer names the queue (deleted and declared again by another
client; the cache entry is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar, cast

from ...config import QueueConfig
from ...message import Delivery
from ...ports.queue import OutgoingMessage, Settlement
from . import batched, general
from .database import Writer
from .rows import publish_row

T = TypeVar("T")
Target = tuple[int, QueueConfig]  # a queue's cached (id, settings)
Runner = Callable[[Callable[[Any], Any]], Any]  # runs fn(conn) on a connection

_PUBLISH = """
WITH r AS (
    UPDATE queues SET next_id = next_id + %(n)s, size = size + %(n)s
    WHERE id = %(q)s AND name = %(name)s
    RETURNING next_id - %(n)s AS first
), p AS (
    INSERT INTO batch_payloads (queue_id, first_id, enqueued_at, payload)
    SELECT %(q)s, r.first + u.o, %(now)s, u.pl
    FROM r, unnest(%(offsets)s::bigint[], %(payloads)b::bytea[]) AS u(o, pl)
), b AS (
    INSERT INTO message_batches (queue_id, first_id, count)
    SELECT %(q)s, r.first + u.o, u.c
    FROM r, unnest(%(offsets)s::bigint[], %(counts)s::int[]) AS u(o, c)
)
SELECT r.first FROM r
"""

_PUBLISH_ONE = """
WITH r AS (
    UPDATE queues SET next_id = next_id + 1, size = size + 1
    WHERE id = %(q)s AND name = %(name)s
    RETURNING next_id - 1 AS id
), m AS (
    INSERT INTO messages (queue_id, id, visible_at, group_key, expires_at, enqueued_at,
                          headers, body)
    SELECT %(q)s, r.id, %(visible)s, %(group)s, %(expires)s, %(now)s, %(headers)s, %(body)b
    FROM r
)
SELECT r.id FROM r
"""

_CLAIM = """
WITH quick AS (
    SELECT set_config('synchronous_commit', 'off', true) AS off
), ok AS (
    SELECT EXISTS (SELECT 1 FROM queues WHERE id = %(q)s AND name = %(name)s) AS known,
           NOT EXISTS (SELECT 1 FROM messages WHERE queue_id = %(q)s AND visible_at <= %(now)s)
       AND NOT EXISTS (SELECT 1 FROM leases WHERE queue_id = %(q)s AND visible_at <= %(now)s)
           AS clear
), t AS (
    UPDATE message_batches
    SET lease_from = claimed, claimed = least(claimed + %(want)s, count)
    WHERE queue_id = %(q)s AND (SELECT known AND clear FROM ok) AND first_id = (
        SELECT first_id FROM message_batches
        WHERE queue_id = %(q)s AND claimed < count
        ORDER BY first_id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING first_id, lease_from, claimed
), l AS (
    INSERT INTO leases (queue_id, first_id, last_id, batch_id, receipt, visible_at, deliveries)
    SELECT %(q)s, first_id + lease_from, first_id + claimed - 1, first_id,
           %(receipt)s, %(until)s, 1
    FROM t
)
SELECT (SELECT known FROM ok), (SELECT clear FROM ok), (SELECT off FROM quick),
       t.first_id, t.lease_from, t.claimed,
       (SELECT payload FROM batch_payloads p WHERE p.queue_id = %(q)s AND p.first_id = t.first_id)
FROM (SELECT 1) AS one LEFT JOIN t ON true
"""

_ACK = """
WITH quick AS (
    SELECT set_config('synchronous_commit', 'off', true) AS off
), d AS (
    DELETE FROM leases
    WHERE queue_id = %(q)s AND receipt = %(receipt)s AND visible_at > %(now)s
      AND NOT EXISTS (SELECT 1 FROM generate_series(first_id, last_id) AS g
                      WHERE g <> ALL (%(ids)s::bigint[]))
      AND (SELECT off FROM quick) IS NOT NULL
    RETURNING first_id, last_id, batch_id
), r AS (
    DELETE FROM messages
    WHERE %(rows)s AND queue_id = %(q)s AND receipt = %(receipt)s AND visible_at > %(now)s
      AND id = ANY (%(ids)s::bigint[])
      AND (SELECT off FROM quick) IS NOT NULL
    RETURNING id
), per AS (
    SELECT batch_id, sum(last_id - first_id + 1) AS n FROM d GROUP BY batch_id
), gone AS (
    DELETE FROM message_batches m USING per
    WHERE m.queue_id = %(q)s AND m.first_id = per.batch_id AND m.settled + per.n >= m.count
), kept AS (
    UPDATE message_batches m SET settled = m.settled + per.n FROM per
    WHERE m.queue_id = %(q)s AND m.first_id = per.batch_id AND m.settled + per.n < m.count
), sz AS (
    UPDATE queues
    SET size = size - (SELECT coalesce(sum(n), 0) FROM per) - (SELECT count(*) FROM r)
    WHERE id = %(q)s AND (EXISTS (SELECT 1 FROM d) OR EXISTS (SELECT 1 FROM r))
)
SELECT first_id, last_id FROM d UNION ALL SELECT id, id FROM r
"""


class PgFast:
    """Runs publish, claim and ack of a queue in one statement each where
    it can, and finishes on the general path where it cannot."""

    def __init__(
        self,
        oneshot: Runner,
        writer: Writer,
        ids: dict[str, Target],
        now: general.Clock,
        wake: Callable[[tuple[str, ...]], None],
    ) -> None:
        self._oneshot = oneshot  # one self-committing statement, pooled connection
        self._w = writer
        # The facade's cache of queue ids: each statement checks the id
        # still names the queue, and a stale entry is dropped here.
        self._ids = ids
        self._now = now
        self._wake = wake  # wake-ups after a statement's own commit

    def _run(self, fn: Callable[[Any], T]) -> T:
        return cast(T, self._oneshot(fn))

    def publish(
        self, queue: str, target: Target, messages: Sequence[OutgoingMessage], batch: bool
    ) -> list[int]:
        """Publish in one statement: as batch rows (``batch``: the messages
        fit them), else one message as a message row."""
        qid, config = target
        now = self._now()
        if batch:
            ids = self._run(partial(_publish, queue=queue, qid=qid, messages=messages, now=now))
        else:
            row = publish_row(qid, 0, messages[0], config, now)
            ids = self._run(partial(_publish_one, queue=queue, qid=qid, row=row))
        if ids is None:  # the queue was declared again: its settings may differ
            self._ids.pop(queue, None)
            return general.publish(self._w, queue, messages, self._now)
        self._wake(("queue:" + queue,))
        return ids

    def claim(self, queue: str, target: Target, max_messages: int) -> list[Delivery]:
        """Lease from batch rows, one statement per row reached. When the
        queue has message rows or expired ranges to serve first, or the
        cached id is stale, the general path claims (unless this claim
        already leased some: those are returned)."""
        qid, config = target
        receipt = os.urandom(8).hex()
        out: list[Delivery] = []
        while len(out) < max_messages:
            now, want = self._now(), max_messages - len(out)
            until = now + int(config.lease_s * 1000)
            found, got = self._run(
                partial(
                    _claim, queue=queue, qid=qid, want=want, receipt=receipt, until=until, now=now
                )
            )
            if found == "stale":
                self._ids.pop(queue, None)
            if found != "leased":  # stale, or message rows to serve first
                return out or general.claim(self._w, queue, max_messages, self._now)
            out.extend(got)
            if not got:
                break
        return out

    def settle(
        self, queue: str, target: Target, settlements: Sequence[Settlement]
    ) -> list[BaseException | None]:
        """Settle acks of one claim: one statement acks what it can, the
        general path judges the rest (late or partial ranges, FIFO rows,
        lost leases, repeats of an id, a stale queue id)."""
        (qid, config), receipt = target, settlements[0].receipt
        ids = [s.id for s in settlements]
        acked = self._run(
            partial(_ack, qid=qid, receipt=receipt, ids=ids, now=self._now(), rows=not config.fifo)
        )
        if acked == set(ids) and len(acked) == len(ids):
            return [None] * len(ids)
        results: list[BaseException | None] = [None] * len(settlements)
        pending: list[int] = []  # indexes of the settlements still to judge
        for i, s in enumerate(settlements):
            if s.id in acked:
                acked.discard(s.id)
            else:
                pending.append(i)
        if pending:
            rest = [settlements[i] for i in pending]
            judged = general.settle(self._w, queue, rest, self._now)
            for i, verdict in zip(pending, judged, strict=True):
                results[i] = verdict
        return results


# ---- the statements -------------------------------------------------------------


def _publish(
    conn: Any, queue: str, qid: int, messages: Sequence[OutgoingMessage], now: int
) -> list[int] | None:
    """The messages as batch rows; None when ``qid`` no longer names ``queue``."""
    rows = batched.chunks(messages)
    row = conn.raw.execute(
        _PUBLISH,
        {
            "n": len(messages),
            "q": qid,
            "name": queue,
            "now": now,
            "offsets": [start for start, _, _ in rows],
            "counts": [n for _, n, _ in rows],
            "payloads": [payload for _, _, payload in rows],  # sent binary (%b)
        },
    ).fetchone()
    if row is None:
        return None
    first = int(row[0])
    return list(range(first, first + len(messages)))


def _publish_one(conn: Any, queue: str, qid: int, row: Sequence[Any]) -> list[int] | None:
    """One message as a message row; ``row`` as ``rows.publish_row`` builds
    it, its id ignored. None when ``qid`` no longer names ``queue``."""
    _, _, visible, group, expires, now, headers, body = row
    found = conn.raw.execute(
        _PUBLISH_ONE,
        {
            "q": qid,
            "name": queue,
            "visible": visible,
            "group": group,
            "expires": expires,
            "now": now,
            "headers": headers,
            "body": body,
        },
    ).fetchone()
    return None if found is None else [int(found[0])]


def _claim(
    conn: Any, queue: str, qid: int, want: int, receipt: str, until: int, now: int
) -> tuple[str, list[Delivery]]:
    """("leased", deliveries (possibly none)); ("busy", []) when the queue
    has message rows or expired ranges to serve first; ("stale", []) when
    ``qid`` no longer names ``queue``."""
    row = conn.raw.execute(
        _CLAIM,
        {"q": qid, "name": queue, "now": now, "want": want, "receipt": receipt, "until": until},
        binary=True,  # the payload as bytes on the wire, not hex text
    ).fetchone()
    known, clear, _off, first, start, end, payload = row
    if not known or not clear:
        return ("stale" if not known else "busy"), []
    if first is None:
        return "leased", []
    return "leased", batched.deliveries(queue, first, start, end, payload, receipt, until)


def _ack(conn: Any, qid: int, receipt: str, ids: Sequence[int], now: int, rows: bool) -> set[int]:
    """Ack what ``ids`` cover under ``receipt`` while leased: whole range
    leases, and with ``rows`` message rows too. Return the ids acked."""
    found = conn.raw.execute(
        _ACK, {"q": qid, "receipt": receipt, "now": now, "ids": list(ids), "rows": rows}
    ).fetchall()
    return {mid for lo, hi in found for mid in range(lo, hi + 1)}
