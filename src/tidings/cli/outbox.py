"""``tidings relay`` and ``tidings outbox migrate|status|cleanup|redispatch``.

``--db`` names the application database holding the outbox tables; the
relay forwards to the engine named by ``--to`` (default: ``--url``, else
``TIDINGS_URL``). Exit codes as everywhere: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import datetime
from typing import Any

from ..config import parse_duration
from ..errors import ConfigurationError
from . import options
from .context import Context


def register(sub: Any) -> None:
    relay = sub.add_parser("relay", help="forward an outbox to the engine, in commit order")
    _common(relay)
    relay.add_argument("--to", help="engine URL to forward to (default: --url / $TIDINGS_URL)")
    relay.add_argument("--shard", type=int, action="append", help="only these shards (repeat)")
    relay.add_argument("--batch", type=int, default=5000, help="events per forward (5000)")
    relay.add_argument("--lease", default="30s", help="shard lease; outlast the slowest publish")
    relay.add_argument("--drain", action="store_true", help="exit once nothing is pending")
    relay.add_argument(
        "--metrics-port",
        type=options.index,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics",
    )
    relay.set_defaults(handler=run_relay)
    outbox = sub.add_parser("outbox", help="outbox tables: migrate, status, cleanup, redispatch")
    actions = outbox.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    _migrate_parser(actions)
    _status_parser(actions)
    _cleanup_parser(actions)
    _redispatch_parser(actions)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db", required=True, help="the application database (sqlite:///app.db, postgresql://…)"
    )
    p.add_argument("--outbox", default="default", help="outbox name (default: default)")


def _migrate_parser(actions: Any) -> None:
    p = actions.add_parser("migrate", help="create the outbox tables, declare an outbox")
    _common(p)
    p.add_argument("--shards", type=int, default=1, help="shards of --outbox (default 1)")
    p.add_argument(
        "--no-notify",
        dest="notify",
        action="store_false",
        help="PostgreSQL: writers send no NOTIFY (cheaper concurrent commits), relays poll",
    )
    p.set_defaults(handler=run_migrate)


def _status_parser(actions: Any) -> None:
    p = actions.add_parser("status", help="pending, lag, counts and lease holder per shard")
    _common(p)
    p.set_defaults(handler=run_status, outbox=None)


def _cleanup_parser(actions: Any) -> None:
    p = actions.add_parser("cleanup", help="delete forwarded events older than a retention")
    _common(p)
    p.add_argument("--older-than", required=True, help="retention, e.g. 7d")
    p.add_argument("--page", type=int, default=1000, help="rows per transaction (1000)")
    p.set_defaults(handler=run_cleanup, outbox=None)


def _redispatch_parser(actions: Any) -> None:
    p = actions.add_parser("redispatch", help="forward a range of events again")
    _common(p)
    p.add_argument("--from-id", type=int, help="first event id of the range (inclusive)")
    p.add_argument("--to-id", type=int, help="last event id of the range (inclusive)")
    p.add_argument("--since", type=datetime.fromisoformat, help="ISO time")
    p.add_argument("--until", type=datetime.fromisoformat, help="ISO time")
    p.set_defaults(handler=run_redispatch)


def _json(args: argparse.Namespace, ctx: Context) -> bool:
    return bool(ctx.json)


def run_migrate(args: argparse.Namespace, ctx: Context) -> int:
    from ..outbox import migrate

    version = migrate(args.db, {args.outbox: args.shards}, notify=args.notify)
    obj = {"db": args.db, "schema_version": version, "outbox": args.outbox, "shards": args.shards}
    text = f"{args.db}: outbox schema version {version}; {args.outbox!r}: {args.shards} shard(s)"
    _say(args, ctx, obj, text)
    return 0


def _say(args: argparse.Namespace, ctx: Context, obj: dict[str, Any], text: str) -> None:
    if _json(args, ctx):
        ctx.emit(obj)
    else:
        print(text)


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    from dataclasses import asdict

    from ..outbox import status

    shards = status(args.db, args.outbox)
    if _json(args, ctx):
        for s in shards:
            ctx.emit(asdict(s))
        return 0
    headers = ("outbox", "shard", "pending", "lag_s", "forwarded", "failed", "relay", "last_error")
    rows = [
        (
            s.outbox,
            s.shard,
            s.pending,
            f"{s.lag_s:.3f}",
            s.forwarded,
            s.failed,
            s.owner or "-",
            s.last_error or "",
        )
        for s in shards
    ]
    ctx.table(headers, rows)
    return 0


def run_cleanup(args: argparse.Namespace, ctx: Context) -> int:
    from ..outbox import cleanup

    n = cleanup(args.db, args.older_than, args.outbox, args.page)
    _say(args, ctx, {"deleted": n}, f"deleted {n} forwarded event(s)")
    return 0


def run_redispatch(args: argparse.Namespace, ctx: Context) -> int:
    from ..outbox import redispatch

    n = redispatch(
        args.db,
        args.outbox,
        from_id=args.from_id,
        to_id=args.to_id,
        since=args.since,
        until=args.until,
    )
    _say(args, ctx, {"redispatched": n}, f"queued {n} event(s) to be forwarded again")
    return 0


def run_relay(args: argparse.Namespace, ctx: Context) -> int:
    if args.batch < 1:
        raise ConfigurationError(f"--batch must be >= 1, got {args.batch}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = _metrics_server(args)
    try:
        n = _relay(args, ctx, stop)
    finally:
        if server is not None:
            server.shutdown()
    _say(args, ctx, {"forwarded": n}, f"forwarded {n} event(s)")
    return 0


def _metrics_server(args: argparse.Namespace) -> Any:
    if args.metrics_port is None:
        return None
    from ..outbox import metrics, status

    return metrics.serve(lambda: status(args.db, args.outbox), args.metrics_port)


def _relay(args: argparse.Namespace, ctx: Context, stop: threading.Event) -> int:
    from ..outbox import Relay

    with Relay(
        args.db,
        args.to or ctx.url,
        outbox=args.outbox,
        batch_size=args.batch,
        lease_s=parse_duration(args.lease, "lease"),
        shards=tuple(args.shard) if args.shard else None,
    ) as relay:
        return relay.run(stop, until_idle=args.drain)
