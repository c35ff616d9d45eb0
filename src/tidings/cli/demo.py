"""``tidings demo``: the booking story of ``examples/booking`` end to end on
the embedded engine — live progress lines, then a summary whose counts are
read from the stores and checked (exit code 1 if a check fails).

The story itself lives in ``examples/booking`` (the one copy, readable and
runnable with ``python -m examples.booking``); this module only chooses
where its files go, prints, and explains how to explore what it left.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .context import Context, fail
from .signals import Terminated

ROOT = Path(__file__).resolve().parents[3]  # the checkout: src/tidings/cli/demo.py


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the booking story end to end on the embedded engine, with checked counts",
        description="Play the booking story (examples/booking): outbox and relay, four services "
        "in their own consumer groups, a transient failure, a poison message parked and "
        "triaged, a service bootstrapped from the log, a returns queue with a dead-letter "
        "queue. Exit code 1 if a check of the summary fails.",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="play it in DIR (must not exist yet) and keep the databases there; "
        "prints commands to explore them (default: a temporary directory, removed)",
    )
    p.add_argument(
        "--pace",
        type=float,
        default=0.04,
        metavar="S",
        help="seconds between two bookings (default 0.04)",
    )
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, ctx: Context) -> int:
    if args.url is not None:
        raise ConfigurationError(
            "tidings demo runs the embedded engine in its own files and takes no --url; "
            "--keep DIR chooses where they go"
        )
    if not 0 <= args.pace <= 10:
        raise ConfigurationError(f"--pace must be between 0 and 10 seconds, got {args.pace}")
    story = _example()
    workdir = _workdir(args.keep)
    if workdir is None:
        return 1
    try:
        return _play(story, workdir, args, ctx)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _example() -> Any:
    """``examples.booking`` from the checkout this tidings runs from."""
    if not (ROOT / "examples" / "booking" / "story.py").is_file():
        raise ConfigurationError(
            f"tidings demo plays examples/booking of a source checkout; there is none at {ROOT} "
            "(run it from a clone: ./scripts/demo.sh)"
        )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("examples.booking")


def _workdir(keep: str | None) -> Path | None:
    """A new directory for the two databases (None, said why, if it cannot be
    made). Raises ConfigurationError if DIR exists: the story needs a fresh one."""
    if keep is not None and Path(keep).exists():
        raise ConfigurationError(
            f"--keep {keep}: it exists; name a new directory (the demo starts from nothing)"
        )
    try:
        if keep is None:
            return Path(tempfile.mkdtemp(prefix="tidings-demo-"))
        path = Path(keep).absolute()
        path.mkdir(parents=True)
        return path
    except OSError as exc:
        fail(f"cannot create the demo's directory {keep or tempfile.gettempdir()}: "
             f"{exc.strerror or exc}")  # fmt: skip
        return None


def _play(story: Any, workdir: Path, args: argparse.Namespace, ctx: Context) -> int:
    printer = _Printer(json=ctx.json)
    printer.line(f"tidings demo: the booking story on the embedded engine, in {workdir}")
    try:
        world = story.run(workdir, printer.say, pace=args.pace)
    except (KeyboardInterrupt, Terminated):
        kept = f"; what was committed is in {workdir}" if args.keep else ""
        fail(f"interrupted: every service stopped cleanly{kept}")
        raise
    summary = story.summarize(world)
    summary["wall_s"] = round(time.monotonic() - printer.t0, 2)
    summary["dir"] = str(workdir) if args.keep else None
    summary["explore"] = _explore(workdir) if args.keep else []
    if ctx.json:
        ctx.emit(summary)
    else:
        _print_summary(summary)
    return 0 if summary["ok"] else 1


class _Printer:
    """Live progress: for people on stdout; with --json on stderr, so stdout
    holds only the summary object."""

    def __init__(self, json: bool) -> None:
        self.out = sys.stderr if json else sys.stdout
        self.t0 = time.monotonic()
        self.lock = threading.Lock()  # handlers report from their own threads

    def line(self, text: str) -> None:
        """Never raises: a reader that went away (``| head``) must not turn
        into a failing handler; the summary's write reports it (exit 141)."""
        with self.lock:
            try:
                print(text, file=self.out, flush=True)
            except (BrokenPipeError, ValueError):
                pass

    def say(self, who: str, text: str) -> None:
        self.line(f"{time.monotonic() - self.t0:6.2f}s  {who:<9} {text}")


def _explore(workdir: Path) -> list[str]:
    bus, app = f"sqlite:///{workdir / 'bus.db'}", f"sqlite:///{workdir / 'app.db'}"
    return [
        f"export TIDINGS_URL={bus}",
        "tidings topics describe bookings",
        "tidings groups describe billing",
        "tidings consume bookings --group explorer --from beginning --max 3 --timeout 1",
        "tidings failed list --status any",
        "tidings failed actions",
        "tidings queues describe returns",
        "tidings dlq list returns",
        f"tidings outbox status --db {app}",
    ]


def _print_summary(summary: dict[str, Any]) -> None:
    c = summary["counts"]
    print("\nsummary (every count read back from the stores):")
    for check in summary["checks"]:
        print(f"  {'ok  ' if check['ok'] else 'FAIL'}  {check['name']}: {check['detail']}")
    if c:
        print(f"  {c['bookings']} bookings, {c['events_forwarded']} events relayed, "
              f"{len(c['groups'])} groups, {c['failed_events']} failed event, "
              f"{c['compacted_away']} records compacted away, {c['refunds']} refunds, "
              f"{c['dead_letters']} dead letters; {summary['wall_s']} s")  # fmt: skip
    print("all checks passed" if summary["ok"] else "SOME CHECKS FAILED")
    if summary["explore"]:
        print(f"\nthe databases are kept in {summary['dir']}; explore them:")
        for command in summary["explore"]:
            print(f"  {command}")
