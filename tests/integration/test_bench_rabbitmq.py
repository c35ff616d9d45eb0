"""``tidings bench`` with ``--url amqp://…``: tidings beside raw aio-pika
(queue workloads) and raw rstream (log workloads) on the same server, with
``ratio`` lines (issue 12). Speeds are reported, never asserted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tidings.cli.context import Context
from tidings.cli.main import build_parser
from tidings.testing.pytest_plugin import require_engine, service_reachable

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
pytestmark = pytest.mark.engine("rabbitmq")
QUEUE_COMPARED = ("queue.publish.batched", "queue.consume.ack", "queue.publish.single")
LOG_COMPARED = ("log.append.batched", "log.consume.group")


def run_bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    args = build_parser().parse_args(["--url", AMQP, "bench", *argv, "--json", "--quick"])
    assert args.handler(args, Context(url=args.url, json=args.json)) == 0
    return [json.loads(row) for row in capsys.readouterr().out.splitlines()]


def test_queue_bench_on_amqp_emits_ratios_versus_raw_aio_pika(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    only = [a for w in QUEUE_COMPARED for a in ("--only", w)]
    lines = run_bench(["queue", *only], capsys)
    assert [ln for ln in lines if "error" in ln] == []
    for workload in QUEUE_COMPARED:
        ours = [ln for ln in lines if ln["workload"] == workload and "versus" not in ln]
        engines = {ln["engine"] for ln in ours}
        assert {"tidings-rabbitmq", "raw-aio-pika"} <= engines, workload
        assert all(ln["records_per_s"] > 0 for ln in ours if ln["engine"] in engines)
        (ratio,) = [ln for ln in lines if ln["workload"] == workload and "versus" in ln]
        assert (ratio["engine"], ratio["versus"]) == ("tidings-rabbitmq", "raw-aio-pika")
        assert ratio["ratio"] > 0


def test_log_bench_on_amqp_runs_raw_rstream_beside_tidings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Until the amqp:// engine has topics, its log workloads are error lines
    and raw rstream still runs; once it has them, ratio lines appear."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5552), "stream port 5552")
    only = [a for w in LOG_COMPARED for a in ("--only", w)]
    lines = run_bench(["log", *only], capsys)
    for workload in LOG_COMPARED:
        raw = [ln for ln in lines if ln["workload"] == workload and ln["engine"] == "raw-rstream"]
        assert len(raw) == 1 and raw[0]["records_per_s"] > 0, lines
        ours = [
            ln for ln in lines
            if ln["workload"] == workload and ln["engine"] == "tidings-rabbitmq"
            and "versus" not in ln
        ]
        assert len(ours) == 1
        ratios = [ln for ln in lines if ln["workload"] == workload and "versus" in ln]
        if "error" in ours[0]:
            assert "UnsupportedFeature" in ours[0]["error"] and ratios == []
        else:
            assert [r["versus"] for r in ratios] == ["raw-rstream"] and ratios[0]["ratio"] > 0


def test_engine_names_rabbitmq_for_amqp_urls() -> None:
    from tidings.bench.harness import engine_name

    assert engine_name(AMQP) == "tidings-rabbitmq"
    assert engine_name("amqps://h/") == "tidings-rabbitmq"
    assert engine_name("postgres://h/db") == "tidings-postgresql"
