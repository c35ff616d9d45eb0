"""One-statement fast paths for PostgreSQL queues (batch rows, ``batched.py``).

On PostgreSQL a queue call is dominated by round trips, not by work: a
get+ack in ``BEGIN`` … ``COMMIT`` transactions took 13 of them (~0.16 ms
each) for ~0.3 ms of server time per 100 messages (measured). Each function
here does the common case of one call as a single self-committing
statement — one round trip — built from data-modifying CTEs:

* :func:`publish` reserves ids and stores batch rows (durable: the
  statement commits with ``synchronous_commit`` on); :func:`publish_one`
  does the same for a single message, as a message row (the caller sends
  the wake-up once the statement has committed);
* :func:`claim` leases a range of the oldest batch row, unless the queue
  has message rows ready or range leases that ran out (those need the
  per-message path, which also serves them first);
* :func:`ack` acks the live range leases a receipt's acks cover whole,
  and the leased message rows they name (outside FIFO queues).

They run on the engine's pooled autocommit connections, beside the writer
(no transaction to open, so no queueing behind the group commit).
``claim`` returns None when the case is not the common one, and each
raises :class:`Stale` when the cached queue id no longer names the queue
(deleted and declared again by another client): the caller then runs the
general path, which is the reference.
``claim`` and ``ack`` turn ``synchronous_commit`` off for their own
statement, as the general path does for leases and acks (a crash of the
server may forget them: a redelivery, never a loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...message import Delivery
from ...ports.queue import OutgoingMessage
from . import batched

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


def publish(
    conn: Any, queue: str, qid: int, messages: Sequence[OutgoingMessage], now: int
) -> list[int]:
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
        raise Stale(queue)
    first = int(row[0])
    return list(range(first, first + len(messages)))


class Stale(Exception):
    """The cached queue id no longer names the queue."""


def publish_one(conn: Any, queue: str, qid: int, row: Sequence[Any]) -> list[int]:
    """One message as a message row; ``row`` as ``publish._row`` builds it
    (queue_id, id, visible_at, group_key, expires_at, enqueued_at, headers,
    body), its id ignored."""
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
    if found is None:
        raise Stale(queue)
    return [int(found[0])]


def claim(
    conn: Any, queue: str, qid: int, want: int, receipt: str, until: int, now: int
) -> list[Delivery] | None:
    """Deliveries (possibly none), or None: take the general path."""
    row = conn.raw.execute(
        _CLAIM,
        {"q": qid, "name": queue, "now": now, "want": want, "receipt": receipt, "until": until},
        binary=True,  # the payload as bytes on the wire, not hex text
    ).fetchone()
    known, clear, _off, first, start, end, payload = row
    if not known:
        raise Stale(queue)
    if not clear:
        return None
    if first is None:
        return []
    return batched.deliveries(queue, first, start, end, payload, receipt, until)


def ack(conn: Any, qid: int, receipt: str, ids: Sequence[int], now: int, rows: bool) -> set[int]:
    """Ack what ``ids`` cover under ``receipt`` while leased: whole range
    leases, and with ``rows`` message rows too (not in FIFO queues, whose
    acks promote the group's next message: the general path does that).
    Return the ids acked; the rest are for the general path."""
    found = conn.raw.execute(
        _ACK, {"q": qid, "receipt": receipt, "now": now, "ids": list(ids), "rows": rows}
    ).fetchall()
    return {mid for lo, hi in found for mid in range(lo, hi + 1)}
