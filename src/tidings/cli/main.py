"""``tidings`` entry point: builds the parser from the command modules.

Each module in ``COMMANDS`` exposes ``register(sub)``, which adds its
sub-parsers and sets ``handler=fn`` on them; ``fn(args, ctx) -> int``
returns the exit code. Exit codes: 0 ok, 1 failed, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError, NotFoundError, TidingsError
from .context import Context

COMMANDS = ("topics", "produce", "consume", "groups", "queues", "migrate", "bench", "run", "failed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description="Reliable event-driven messaging.")
    parser.add_argument(
        "--url", help="engine URL (default: $TIDINGS_URL, else sqlite:///./tidings.db)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(url=args.url, json=args.json)
    try:
        code: int = args.handler(args, ctx)
        return code
    except ConfigurationError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    except (NotFoundError, TidingsError) as exc:
        print(f"tidings: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
