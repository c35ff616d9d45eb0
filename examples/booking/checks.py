"""The summary: counts read from the stores at the end of the story, and
the checks that must hold. Nothing here is a constant of the script except
which booking is poison, which is flaky and which refunds were vouchers —
the *inputs*; every count comes from a store."""

from __future__ import annotations

import json
from typing import Any

from .story import FLAKY, POISON, World

Check = dict[str, Any]


def summarize(w: World) -> dict[str, Any]:
    """``{"ok", "checks": [{"id", "name", "ok", "detail"}], "counts": {...}}``."""
    seen = w.seen
    if not seen:  # interrupted before the end: nothing to check
        return {"ok": False, "checks": [], "counts": {}}
    checks = [{"id": c.__name__, **c(w, seen)} for c in CHECKS]
    return {"ok": all(c["ok"] for c in checks), "checks": checks, "counts": _counts(w, seen)}


def _check(name: str, ok: bool, detail: str) -> Check:
    return {"name": name, "ok": bool(ok), "detail": detail}


def relayed(w: World, seen: dict[str, Any]) -> Check:
    out = seen["outbox"]
    ok = out["pending"] == 0 and out["forwarded"] == w.events_written
    return _check("outbox relayed every committed event", ok,
                  f"{out['forwarded']} forwarded of {w.events_written} written, "
                  f"{out['pending']} pending")  # fmt: skip


def reached(w: World, seen: dict[str, Any]) -> Check:
    ids = set(seen["source"])
    missing = {n: sorted(ids - set(s.effects)) for n, s in seen["services"].items()}
    lag = {n: seen["lag"][n] for n in seen["services"]}
    ok = not any(missing.values()) and all(v == 0 for v in lag.values())
    return _check("every booking reached every group", ok,
                  f"{len(ids)} bookings x {len(missing)} groups; missing {_nonempty(missing)}, "
                  f"lag {lag}")  # fmt: skip


def once(w: World, seen: dict[str, Any]) -> Check:
    doubles = {n: {k: c for k, c in s.effects.items() if c != 1}
               for n, s in seen["services"].items()}  # fmt: skip
    skipped = {n: s.deliveries - sum(s.effects.values()) for n, s in seen["services"].items()}
    return _check("no double effect", not any(doubles.values()),
                  f"effects != 1: {_nonempty(doubles)}; deliveries without effect "
                  f"(updates, retries, duplicates) {skipped}")  # fmt: skip


def recovered(w: World, seen: dict[str, Any]) -> Check:
    fraud = seen["services"]["fraud"]
    parked = [e for e in seen["failed"] if e.app == "fraud"]
    ok = fraud.attempts > 1 and fraud.effects[FLAKY] == 1 and not parked
    return _check("transient failure retried and recovered", ok,
                  f"{FLAKY}: {fraud.attempts} attempts, scored {fraud.effects[FLAKY]}x, "
                  f"{len(parked)} parked")  # fmt: skip


def parked_once(w: World, seen: dict[str, Any]) -> Check:
    events = seen["failed"]
    keys = [(e.app, (e.key or b"").decode()) for e in events]
    ok = keys == [("billing", POISON)]
    return _check("poison event parked exactly once", ok,
                  f"failed events: {keys}")  # fmt: skip


def triaged(w: World, seen: dict[str, Any]) -> Check:
    events = seen["failed"]
    billing = seen["services"]["billing"]
    outcomes = [r.outcome for r in w.triaged]
    ok = outcomes == ["ok"] and [e.status for e in events] == ["republished"]
    ok = ok and billing.effects[POISON] == 1
    return _check("failed event triaged: fixed, republished, processed", ok,
                  f"republish {outcomes}, status {[e.status for e in events]}, "
                  f"{POISON} invoiced {billing.effects[POISON]}x")  # fmt: skip


def bootstrap(w: World, seen: dict[str, Any]) -> Check:
    source, copy = seen["source"], seen["analytics"]
    differ = sorted(k for k in set(source) | set(copy) if source.get(k) != copy.get(k))
    return _check("bootstrap copy equals the source", bool(source) and not differ,
                  f"{len(copy)} bookings read from the log, {len(source)} in the source "
                  f"database, differing: {differ}")  # fmt: skip


def dead_letters(w: World, seen: dict[str, Any]) -> Check:
    cancelled = {k for k, b in seen["source"].items() if b["status"] == "cancelled"}
    poison = {k for k in cancelled if seen["source"][k]["paid_with"] == "voucher"}
    dlq = sorted(json.loads(d.body)["booking"] for d in seen["dead_letters"])
    refunded = seen["desk"].refunded
    ok = dlq == sorted(poison) and set(refunded) == cancelled - poison
    ok = ok and all(c == 1 for c in refunded.values())
    return _check("dead-letter queue holds exactly the poison refunds", ok,
                  f"dead letters {dlq}, refunded {len(refunded)} of "
                  f"{len(cancelled - poison)} card refunds once each, by worker "
                  f"{dict(sorted(seen['desk'].by_worker.items()))}")  # fmt: skip


CHECKS = (relayed, reached, once, recovered, parked_once, triaged, bootstrap, dead_letters)


def _counts(w: World, seen: dict[str, Any]) -> dict[str, Any]:
    source = seen["source"]
    return {
        "bookings": len(source),
        "cancelled": sum(b["status"] == "cancelled" for b in source.values()),
        "events_written": w.events_written,
        "events_forwarded": seen["outbox"]["forwarded"],
        "groups": {n: {"deliveries": s.deliveries, "effects": sum(s.effects.values()),
                       "lag": seen["lag"][n]} for n, s in seen["services"].items()},
        "failed_events": len(seen["failed"]),
        "compacted_away": w.compacted,
        "bootstrapped": len(seen["analytics"]),
        "refunds": sum(seen["desk"].refunded.values()),
        "dead_letters": len(seen["dead_letters"]),
        "timings_s": w.timings,
    }  # fmt: skip


def _nonempty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}
