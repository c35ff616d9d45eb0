"""``tidings bench`` runs end to end with tiny sizes and prints well-formed
lines. It never asserts a speed: benchmarks report, they do not gate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidings.cli.context import Context
from tidings.cli.main import build_parser

METRICS = ("records_per_s", "ratio", "p99_ms", "error")
LOG_WORKLOADS = {
    "disk.fdatasync",
    "log.append.batched",
    "log.append.send",
    "log.consume.group",
    "log.append.bandwidth",
    "log.e2e.latency",
    "log.backlog.flatness",
    "log.append.spread",
    "log.idle_waiters",
    "log.retention.space",
}


def run_bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    args = build_parser().parse_args(["bench", *argv, "--json", "--quick"])
    assert args.handler(args, Context(url=args.url, json=args.json)) == 0
    return [json.loads(row) for row in capsys.readouterr().out.splitlines()]


def assert_shape(lines: list[dict[str, Any]]) -> None:
    for ln in lines:
        assert isinstance(ln["workload"], str) and isinstance(ln["engine"], str)
        assert isinstance(ln["record_bytes"], int)
        assert any(k in ln for k in METRICS), ln
        if "p99_ms" in ln:
            assert ln["p50_ms"] <= ln["p99_ms"]


def test_log_bench_on_sqlite_reports_every_workload(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(["log"], capsys)
    assert_shape(lines)
    assert {ln["workload"] for ln in lines} == LOG_WORKLOADS
    assert [ln for ln in lines if "error" in ln] == []
    assert {ln["engine"] for ln in lines} == {"disk", "tidings-sqlite"}
    bandwidth = next(ln for ln in lines if ln["workload"] == "log.append.bandwidth")
    assert bandwidth["tidings_mb_per_s"] > 0 and bandwidth["disk_mb_per_s"] > 0


def test_log_bench_on_memory_reports_latency_as_unsupported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = run_bench(["log", "--url", "memory://"], capsys)
    assert_shape(lines)
    errors = {ln["workload"] for ln in lines if "error" in ln}
    assert errors == {"log.e2e.latency", "log.idle_waiters", "log.retention.space"}
    assert {ln["engine"] for ln in lines} == {"disk", "tidings-memory"}


def test_peers_print_a_result_or_an_error_each(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(["log", "--peers", "--only", "log.peer"], capsys)
    assert_shape(lines)
    engines = {ln["engine"] for ln in lines}
    assert {"rabbitmq", "nats-jetstream", "redis-streams", "postgresql-table"} <= engines


def test_queue_bench_runs_the_queue_peers(capsys: pytest.CaptureFixture[str]) -> None:
    lines = run_bench(["queue", "--peers", "--only", "queue.peer", "--only", "disk"], capsys)
    assert_shape(lines)
    peers = {ln["engine"] for ln in lines if ln["workload"].startswith("queue.")}
    assert {"persist-queue", "litequeue", "redis-streams", "postgresql-table"} <= peers
    assert {ln["workload"] for ln in lines} >= {"queue.publish.batched", "queue.consume.ack"}
