"""``tidings migrate``: create or upgrade the engine's schema and report it.

Opening a SQL engine creates a missing schema; this command does it
explicitly (e.g. once, with a privileged database user), applies pending
upgrades (``engines/sql/migrations.py``) and prints the version.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..engines.sql.migrations import SCHEMA_VERSION
from .context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the schema, print its version")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    version_of = getattr(ctx.client.engine.log, "schema_version", None)
    if version_of is None:
        print(f"{ctx.url}: this engine keeps no schema")
        return 0
    version = version_of()
    state = "up to date" if version == SCHEMA_VERSION else f"this tidings knows {SCHEMA_VERSION}"
    if ctx.json:
        ctx.emit({"url": ctx.url, "schema_version": version, "current": SCHEMA_VERSION})
    else:
        print(f"{ctx.url}: schema version {version} ({state})")
    return 0
