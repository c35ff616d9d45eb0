"""``tidings features``: what each installed engine guarantees.

The table is built from each engine's declared ``Features`` (the same
values that refuse unsupported calls and skip conformance tests), so it
cannot drift from the code; docs/concepts.md embeds its ``--markdown`` form.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from ..engines.registry import declared_features
from ..features import LABELS, Features, matrix_markdown
from .context import Context


def register(sub: Any) -> None:
    p = sub.add_parser("features", help="the guarantees of every installed engine")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (as in the docs)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    engines = declared_features()
    if args.markdown:
        print(matrix_markdown(engines), end="")
    elif ctx.json:
        for scheme, declared in engines.items():
            ctx.emit({"engine": scheme, "features": declared.as_dict() if declared else None})
    else:
        rows = [
            [LABELS.get(f.name, f.name)]
            + ["-" if d is None else str(getattr(d, f.name)) for d in engines.values()]
            for f in fields(Features)
        ]
        ctx.table(["feature", *engines], rows)
    return 0
