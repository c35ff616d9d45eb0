"""``tidings`` entry point: builds the parser from the command modules.

Each module in ``COMMANDS`` exposes ``register(sub)``, which adds its
sub-parsers and sets ``handler=fn`` on them; ``fn(args, ctx) -> int``
returns the exit code. A new command group is one more line in
``COMMANDS``. The global options (``--url``, ``--json``) are accepted
before or after any subcommand.

Exit codes: 0 ok, 1 failed, 2 usage, 130 interrupted (Ctrl-C), 143
terminated (SIGTERM), 141 the output was closed (``| head``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import ConfigurationError, TidingsError
from .context import Context, fail
from .signals import Terminated, unwinding

COMMANDS = (
    "topics",
    "produce",
    "consume",
    "groups",
    "queues",
    "migrate",
    "bench",
    "outbox",
    "run",
    "failed",
    "demo",
    "features",
)

URL_HELP = "engine URL (default: $TIDINGS_URL, else sqlite:///./tidings.db)"
JSON_HELP = "machine-readable output: one compact JSON object per line"


class Parser(argparse.ArgumentParser):
    """Every tidings (sub)command parser: it accepts the global options too,
    so they may come anywhere on the line. Sub-parsers leave them unset
    unless given (SUPPRESS), so a value given earlier is kept."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
        self.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tidings", description="Reliable event-driven messaging.")
    parser.set_defaults(url=None, json=False)
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage error, --help or --version: argparse has printed
        return exc.code if isinstance(exc.code, int) else 2
    ctx = Context(url=args.url, json=args.json)
    with unwinding():
        try:
            return _closing(args, ctx)
        except KeyboardInterrupt:
            return 130
        except Terminated:
            return 143


def _closing(args: argparse.Namespace, ctx: Context) -> int:
    try:
        return _run(args, ctx)
    except BrokenPipeError:
        _silence_stdout()
        return 141
    finally:
        ctx.close()


def _run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        code: int = args.handler(args, ctx)
        return code
    except ConfigurationError as exc:
        fail(str(exc))
        return 2
    except TidingsError as exc:
        fail(f"{type(exc).__name__}: {exc}")
        return 1


def _silence_stdout() -> None:
    """The reader has gone: drop what is still buffered, quietly, so the
    interpreter's last flush does not report the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (captured output): nothing to silence


if __name__ == "__main__":
    sys.exit(main())
