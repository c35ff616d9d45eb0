"""``tidings bench log|queue``: measure tidings (and, with ``--peers``, the
engines a Python user would otherwise run) on this machine, in one run."""

from __future__ import annotations

import argparse
from typing import Any

from . import options
from .context import Context


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="measure throughput and latency against peers")
    kinds = parser.add_subparsers(dest="bench_kind", metavar="KIND", required=True)
    for kind, text in (("log", "topics: append, consume, latency"), ("queue", "queues")):
        p = kinds.add_parser(kind, help=text)
        _options(p)
        p.set_defaults(handler=run_log if kind == "log" else run_queue)
    _options(outbox := kinds.add_parser("outbox", help="outbox relay, latency, writer cost"))
    outbox.set_defaults(handler=run_outbox)
    _options(p := kinds.add_parser("runtime", help="the consumer runtime over a raw consume loop"))
    p.set_defaults(handler=run_runtime)


def _options(p: argparse.ArgumentParser) -> None:
    # --url (the engine to measure; default: a temp SQLite file per
    # workload) and --json are the global options.
    p.add_argument(
        "--peers",
        action="store_true",
        help="also run RabbitMQ, NATS, Redis, PostgreSQL … (a missing driver or "
        "service is a line with an error)",
    )
    p.add_argument("--records", type=options.count, help="records per workload (default 1,000,000)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        help="run workloads whose name starts so (repeatable)",
    )
    p.add_argument("--dir", help="where temporary databases go (default: the temp directory)")


def _settings(args: argparse.Namespace) -> Any:
    from ..bench.harness import Settings

    extra = {"only": tuple(args.only)}
    if args.dir:
        extra["workdir"] = args.dir
    # An explicit --url names the engine to measure; $TIDINGS_URL does not.
    return Settings.make(args.url, args.records, args.quick, args.peers, **extra)


def run_log(args: argparse.Namespace, ctx: Context) -> int:
    """Always 0 once running: a failing workload is a line with ``error``."""
    from ..bench import run_log as run

    run(_settings(args), as_json=ctx.json)
    return 0


def run_queue(args: argparse.Namespace, ctx: Context) -> int:
    from ..bench import run_queue as run

    run(_settings(args), as_json=ctx.json)
    return 0


def run_outbox(args: argparse.Namespace, ctx: Context) -> int:
    from ..bench.outbox import run_outbox as run

    run(_settings(args), as_json=ctx.json)
    return 0


def run_runtime(args: argparse.Namespace, ctx: Context) -> int:
    from ..bench.runtime import run_runtime as run

    run(_settings(args), as_json=ctx.json)
    return 0
