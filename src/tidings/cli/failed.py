"""``tidings failed list|groups|show|actions|replay|republish|discard``."""

from __future__ import annotations

import argparse
import base64
from dataclasses import asdict
from datetime import datetime
from typing import Any

from ..errors import ConfigurationError
from ..ports.failed import RESOLUTIONS, FailedEvent, FailedFilter
from . import options
from .context import Context


def register(sub: Any) -> None:
    failed = sub.add_parser("failed", help="triage failed events of the consumer runtime")
    verbs = failed.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("list", help="failed events (default: parked ones), oldest first")
    _filters(p)
    p.add_argument(
        "--limit", type=options.count, default=1000, metavar="N", help="at most N events"
    )
    p.set_defaults(handler=_list)
    p = verbs.add_parser("groups", help="counts by exception type and call site")
    _filters(p)
    p.set_defaults(handler=_groups)
    p = verbs.add_parser("show", help="one failed event with every field")
    p.add_argument("id", type=options.index, help="the failed event id (from failed list)")
    p.set_defaults(handler=_show)
    p = verbs.add_parser("actions", help="recorded triage actions (of one event, or all)")
    p.add_argument(
        "id", type=options.index, nargs="?", help="only this failed event's actions"
    )
    p.set_defaults(handler=_actions)
    for verb, text in (
        ("replay", "re-process in place with the App's handler (--load module:app)"),
        ("republish", "publish the original again to its topic / queue"),
        ("discard", "resolve without handling"),
    ):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("ids", type=int, nargs="*", help="failed event ids (else: the filters)")
        _filters(p)
        p.add_argument("--all", action="store_true", help="every parked event (no filter)")
        p.add_argument("--dry-run", action="store_true", help="list what would be done")
        p.add_argument("--actor", help="recorded as who did it (default: user@host)")
        if verb == "replay":
            p.add_argument("--load", required=True, metavar="MODULE:APP", help="the App to run")
        p.set_defaults(handler=_act, action=verb)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", help="only events of this App")
    p.add_argument("--handler", dest="handler_name", help="only events of this handler")
    p.add_argument("--topic", help="only events read from this topic")
    p.add_argument("--queue", help="only events read from this queue")
    p.add_argument("--exception-type", help="only this exception type (e.g. ValueError)")
    p.add_argument("--key", help="the original key (or FIFO group)")
    p.add_argument("--since", help="ISO time: failed at or after")
    p.add_argument("--until", help="ISO time: failed before")
    p.add_argument("--status", default="parked", help=f"parked, {', '.join(RESOLUTIONS)} or any")


def _ms(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    except ValueError as exc:
        raise ConfigurationError(f"{option} must be an ISO time, got {value!r}") from exc


def _where(args: argparse.Namespace) -> FailedFilter:
    status = getattr(args, "status", "parked")
    if status not in ("parked", "any", *RESOLUTIONS):
        raise ConfigurationError(f"--status must be parked, {', '.join(RESOLUTIONS)} or any")
    return FailedFilter(
        app=args.app, handler=args.handler_name, topic=args.topic, queue=args.queue,
        exception_type=args.exception_type, since_ms=_ms(args.since, "--since"),
        until_ms=_ms(args.until, "--until"), status=None if status == "any" else status,
        key=None if args.key is None else args.key.encode(),
    )  # fmt: skip


def _has_filter(where: FailedFilter) -> bool:
    return any(v is not None for k, v in asdict(where).items() if k != "status")


def _failed(ctx: Context, actor: str | None = None) -> Any:
    from ..runtime.triage import FailedEvents

    return FailedEvents(ctx.client, actor)


def as_json(e: FailedEvent) -> dict[str, Any]:
    """A failed event as JSON: bytes as UTF-8 text when they are, else base64."""
    out = asdict(e)
    for name in ("payload", "key"):
        out[name], out[f"{name}_encoding"] = _text(out[name])
    out["history"] = list(out["history"])
    return out


def _text(data: bytes | None) -> tuple[str | None, str | None]:
    if data is None:
        return None, None
    try:
        return data.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), "base64"


def _source(e: FailedEvent) -> str:
    if e.source == "topic":
        return f"{e.topic}/{e.partition}@{e.offset}"
    return f"{e.queue}#{e.message_id}"


def _list(args: argparse.Namespace, ctx: Context) -> int:
    events = _failed(ctx).find(_where(args), args.limit)
    if ctx.json:
        for e in events:
            ctx.emit(as_json(e))
        return 0
    rows = [
        (e.id, e.status, e.app, e.handler, _source(e), e.exception_type, e.attempts,
         e.replay_count, _iso(e.failed_at))
        for e in events
    ]  # fmt: skip
    ctx.table(
        (
            "id",
            "status",
            "app",
            "handler",
            "source",
            "exception",
            "attempts",
            "replays",
            "failed at",
        ),
        rows,
    )
    return 0


def _groups(args: argparse.Namespace, ctx: Context) -> int:
    groups = _failed(ctx).groups(_where(args))
    if ctx.json:
        for g in groups:
            ctx.emit(g._asdict())
        return 0
    rows = [
        (g.events, g.exception_type, g.call_site, _iso(g.first_seen), _iso(g.last_seen))
        for g in groups
    ]
    ctx.table(("count", "exception", "call site", "first seen", "last seen"), rows)
    return 0


def _show(args: argparse.Namespace, ctx: Context) -> int:
    e = _failed(ctx).show(args.id)
    if ctx.json:
        ctx.emit(as_json(e))
        return 0
    data = as_json(e)
    for name in ("id", "status", "app", "handler", "host", "source", "exception_type",
                 "exception_message", "call_site", "attempts", "replay_count", "publisher",
                 "key", "headers", "payload", "resolved_by"):  # fmt: skip
        print(f"{name:18} {data[name]}")
    print(f"{'where':18} {_source(e)}")
    print(f"{'failed at':18} {_iso(e.failed_at)}")
    for h in e.history:
        print(f"{'attempt':18} {_iso(h['at'])} {h['exception_type']}: {h['message']}")
    print(e.traceback)
    return 0


def _actions(args: argparse.Namespace, ctx: Context) -> int:
    actions = _failed(ctx).actions(args.id)
    if ctx.json:
        for a in actions:
            ctx.emit(a._asdict())
        return 0
    rows = [(a.id, a.event_id, a.action, a.actor, _iso(a.at), a.outcome, a.detail) for a in actions]
    ctx.table(("id", "event", "action", "by", "at", "outcome", "detail"), rows)
    return 0


def _act(args: argparse.Namespace, ctx: Context) -> int:
    where = _where(args)
    if args.ids and (_has_filter(where) or args.all):
        raise ConfigurationError("give failed event ids or filters, not both")
    if not args.ids and not (_has_filter(where) or args.all):
        raise ConfigurationError("give failed event ids, filters, or --all for every parked event")
    target: Any = args.ids if args.ids else where
    failed = _failed(ctx, args.actor)
    if args.action == "replay":
        from ..runtime.loading import load_app

        results = failed.replay(target, load_app(args.load), dry_run=args.dry_run)
    else:
        results = getattr(failed, args.action)(target, dry_run=args.dry_run)
    for r in results:
        ctx.say(asdict(r), f"{r.event_id}\t{r.action}\t{r.outcome}\t{r.detail}")
    return 1 if any(r.outcome == "failed" for r in results) else 0


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")
