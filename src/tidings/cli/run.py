"""``tidings run module:app``: run an App's handlers until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from .context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run an App's handlers (module:app) until SIGTERM/SIGINT")
    p.add_argument("app", help="module:attribute of a tidings.runtime.App")
    p.add_argument("--health-file", help="rewrite this JSON file every second with the health")
    p.add_argument("--health-port", type=int, help="serve GET health on 127.0.0.1:PORT")
    p.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="log lines as JSON objects (default) or plain text",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING or ERROR")
    p.set_defaults(handler=_run)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message (+ error)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():  # fields passed with extra=...
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from ..runtime.loading import load_app
    from ..runtime.runner import Runner

    app = load_app(args.app)
    _logging(args.log_format, args.log_level)
    runner = Runner(app, client=ctx.client)
    return runner.run_until_signal(args.health_file, args.health_port)
