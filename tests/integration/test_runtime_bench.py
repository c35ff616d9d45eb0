"""``tidings bench runtime`` runs end to end with tiny sizes (issue 10). It
never asserts a speed: benchmarks report, they do not gate."""

from __future__ import annotations

import json

import pytest

from tidings.cli.context import Context
from tidings.cli.main import build_parser


def test_bench_runtime_quick_lines(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "runtime", "--json", "--quick"])
    assert args.handler(args, Context(url=None, json=args.json)) == 0
    lines = [json.loads(row) for row in capsys.readouterr().out.splitlines()]
    assert [ln["workload"] for ln in lines] == [
        "runtime.raw", "runtime.batch", "runtime.per_record", "runtime.per_record.async",
    ]  # fmt: skip
    for ln in lines:
        assert "error" not in ln, ln
        assert ln["engine"] == "tidings-sqlite" and ln["record_bytes"] == 100
        assert ln["records_per_s"] > 0
    for ln in lines[1:]:
        assert ln["ratio"] > 0 and ln["target"].startswith("ratio >=")
