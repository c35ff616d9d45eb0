"""The relay's statements on the outbox tables: leases, reads, progress,
status, cleanup and re-dispatch. Every write a relay makes is fenced: it
names the lease's ``owner`` and ``epoch`` and changes nothing (returns
False) once another relay has taken the shard over."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .db import OutboxDb

EventRow = tuple[Any, ...]  # id, destination, key, value, headers (JSON), origin


class ShardLease(NamedTuple):
    """A relay's hold on one shard; ``epoch`` is the fencing token."""

    outbox: str
    shard: int
    owner: str
    epoch: int
    forwarded_id: int


@dataclass(frozen=True)
class ShardStatus:
    """One shard of one outbox, as ``tidings outbox status`` shows it.

    ``pending``: committed events not yet acknowledged by the destination;
    ``lag_s``: age of the oldest of them (0 when none); ``forwarded`` /
    ``failed``: events forwarded and failed forwarding attempts so far;
    ``owner``: the relay holding the lease (None when it has expired)."""

    outbox: str
    shard: int
    pending: int
    lag_s: float
    forwarded_id: int
    forwarded: int
    failed: int
    last_error: str | None
    owner: str | None
    lease_left_s: float


_FENCE = "outbox = :outbox AND shard = :shard AND owner = :owner AND epoch = :epoch"

_ACQUIRE = (
    "UPDATE tidings_outbox_shards SET owner = :owner, epoch = epoch + 1, "
    "lease_until = {now} + :lease WHERE outbox = :outbox AND shard = :shard "
    "AND (owner IS NULL OR lease_until < {now}) RETURNING epoch, forwarded_id"
)
_RENEW = f"UPDATE tidings_outbox_shards SET lease_until = {{now}} + :lease WHERE {_FENCE}"
_ADVANCE = (
    "UPDATE tidings_outbox_shards SET forwarded_id = :to, forwarded = forwarded + :n, "
    f"lease_until = {{now}} + :lease, last_forwarded_at = {{now}}, last_error = NULL "
    f"WHERE {_FENCE} AND forwarded_id = :from"
)
_FAIL = f"UPDATE tidings_outbox_shards SET failed = failed + 1, last_error = :error WHERE {_FENCE}"
_RELEASE = f"UPDATE tidings_outbox_shards SET owner = NULL, lease_until = 0 WHERE {_FENCE}"
_READ = (
    "SELECT id, destination, key, value, headers, origin FROM tidings_outbox "
    "WHERE outbox = :outbox AND shard = :shard AND id > :after ORDER BY id LIMIT :limit"
)
_STATUS = (
    "SELECT s.outbox, s.shard, s.forwarded_id, s.forwarded, s.failed, s.last_error, "
    "CASE WHEN s.lease_until > {now} THEN s.owner END, s.lease_until - {now}, "
    "(SELECT count(*) FROM tidings_outbox t WHERE t.outbox = s.outbox AND t.shard = s.shard "
    "AND t.id > s.forwarded_id), "
    "{now} - (SELECT t.created_at FROM tidings_outbox t WHERE t.outbox = s.outbox "
    "AND t.shard = s.shard AND t.id > s.forwarded_id ORDER BY t.id LIMIT 1) "
    "FROM tidings_outbox_shards s WHERE (CAST(:outbox AS TEXT) IS NULL OR s.outbox = :outbox) "
    "ORDER BY s.outbox, s.shard"
)
# The oldest ``page`` forwarded events of the shard, those past retention.
# Within a shard created_at grows with id, so a page with a younger event
# deletes fewer than ``page`` and ends the cleanup: each page is bounded work.
_CLEAN_PAGE = (
    "DELETE FROM tidings_outbox WHERE id IN (SELECT id FROM tidings_outbox "
    "WHERE outbox = :outbox AND shard = :shard AND id <= :upto ORDER BY id LIMIT :page) "
    "AND created_at < {now} - :keep"
)


class OutboxStore:
    """Relay-side access to one application database."""

    def __init__(self, db: OutboxDb) -> None:
        self.db = db

    def acquire(self, outbox: str, shard: int, owner: str, lease_ms: int) -> ShardLease | None:
        """Take the shard if nobody holds a live lease on it; a takeover
        bumps ``epoch``, which fences the previous holder's writes."""
        rows = self.db.query(
            _ACQUIRE, {"owner": owner, "lease": lease_ms, "outbox": outbox, "shard": shard}
        )
        if not rows:
            return None
        return ShardLease(outbox, shard, owner, int(rows[0][0]), int(rows[0][1]))

    def _fenced(self, sql: str, held: ShardLease, **params: Any) -> bool:
        fence = {"outbox": held.outbox, "shard": held.shard, "owner": held.owner}
        return self.db.execute(sql, {**fence, "epoch": held.epoch, **params}) == 1

    def renew(self, lease: ShardLease, lease_ms: int) -> bool:
        """Extend the lease; False if another relay took the shard."""
        return self._fenced(_RENEW, lease, lease=lease_ms)

    def advance(self, lease: ShardLease, frm: int, to: int, count: int, lease_ms: int) -> bool:
        """Mark events up to ``to`` acknowledged (a contiguous prefix after
        ``frm``) and extend the lease; False if fenced."""
        return self._fenced(_ADVANCE, lease, to=to, n=count, lease=lease_ms, **{"from": frm})

    def record_failure(self, lease: ShardLease, error: str) -> bool:
        return self._fenced(_FAIL, lease, error=error[:1000])

    def release(self, lease: ShardLease) -> bool:
        """Give the shard up now, so a standby need not wait for the lease."""
        return self._fenced(_RELEASE, lease)

    def read(self, outbox: str, shard: int, after: int, limit: int) -> list[EventRow]:
        """Committed events of the shard after id ``after``, in id order."""
        return self.db.query(
            _READ, {"outbox": outbox, "shard": shard, "after": after, "limit": limit}
        )

    def status(self, outbox: str | None = None) -> list[ShardStatus]:
        return [_status(r) for r in self.db.query(_STATUS, {"outbox": outbox})]

    def clean_shard(self, outbox: str, shard: int, keep_ms: int, page: int) -> int:
        """Delete forwarded events older than ``keep_ms``, ``page`` rows per
        transaction (short locks, off the writers' path); how many."""
        upto = self.db.query(
            "SELECT forwarded_id FROM tidings_outbox_shards WHERE outbox = :o AND shard = :s",
            {"o": outbox, "s": shard},
        )
        params = {"outbox": outbox, "shard": shard, "upto": upto[0][0] if upto else 0}
        total = 0
        while True:
            n = self.db.execute(_CLEAN_PAGE, {**params, "keep": keep_ms, "page": page})
            total += n
            if n < page:
                return total


def _status(r: tuple[Any, ...]) -> ShardStatus:
    owner = r[6]
    return ShardStatus(
        outbox=r[0],
        shard=int(r[1]),
        pending=int(r[8]),
        lag_s=max(0.0, (r[9] or 0) / 1000),
        forwarded_id=int(r[2]),
        forwarded=int(r[3]),
        failed=int(r[4]),
        last_error=r[5],
        owner=owner,
        lease_left_s=max(0.0, r[7] / 1000) if owner else 0.0,
    )
