"""``tidings bench outbox`` runs end to end with tiny sizes: every workload
yields well-formed lines and no error. It asserts no speed."""

from __future__ import annotations

import json

import pytest

from tidings.cli.context import Context
from tidings.cli.main import build_parser
from tidings.testing.pytest_plugin import require_engine, service_reachable


def test_bench_outbox_quick_yields_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    require_engine("postgresql", service_reachable("127.0.0.1", 5432))
    # The full parser: bench commands take the global --json.
    args = build_parser().parse_args(["bench", "outbox", "--json", "--quick"])
    assert args.handler(args, Context(url=None, json=args.json)) == 0
    lines = [json.loads(row) for row in capsys.readouterr().out.splitlines()]
    assert not [ln for ln in lines if "error" in ln], lines
    seen = {(ln["workload"], ln["engine"]) for ln in lines}
    assert {
        ("outbox.relay", "tidings-sqlite"),
        ("outbox.relay.postgresql", "tidings-postgresql"),
        ("outbox.relay.postgresql", "poll-publish-delete-100"),
        ("outbox.latency", "tidings-sqlite"),
        ("outbox.latency", "tidings-postgresql"),
        ("outbox.writer.overhead", "tidings-sqlite"),
        ("outbox.writer.overhead", "tidings-postgresql"),
    } <= seen
    ratios = [ln for ln in lines if ln.get("versus") == "poll-publish-delete-100"]
    assert len(ratios) == 1 and ratios[0]["ratio"] > 0 and ratios[0]["target"] == ">= 3"
    for ln in lines:
        assert any(k in ln for k in ("records_per_s", "ratio", "p99_ms")), ln
