"""``tidings bench`` on a plain install: peer drivers are optional extras,
so their absence must not stop the tidings workloads (issue 9)."""

from __future__ import annotations

import json
import sys

import pytest

from tidings.cli.main import main

DRIVERS = ("litequeue", "persistqueue", "pika", "nats", "redis")


@pytest.fixture
def no_peer_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a plain ``pip install tidings``: importing a peer driver fails
    (a None entry in sys.modules makes ``import`` raise ModuleNotFoundError),
    and the peer modules are imported afresh."""
    for name in DRIVERS:
        monkeypatch.setitem(sys.modules, name, None)
    for name in list(sys.modules):
        if name.startswith("tidings.bench"):
            monkeypatch.delitem(sys.modules, name)


def bench(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(["bench", *argv, "--quick", "--json"]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return [json.loads(line) for line in out.out.splitlines()]


@pytest.mark.usefixtures("no_peer_drivers")
def test_quick_bench_runs_without_the_peer_drivers(capsys: pytest.CaptureFixture[str]) -> None:
    lines = bench(["log", "--only", "log.append.batched"], capsys)
    assert [ln["workload"] for ln in lines] == ["log.append.batched"]
    assert "error" not in lines[0] and lines[0]["records_per_s"]


@pytest.mark.usefixtures("no_peer_drivers")
def test_a_missing_peer_driver_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    lines = bench(["queue", "--peers", "--only", "queue.peer.litequeue"], capsys)
    assert {ln["engine"] for ln in lines} == {"litequeue"} and len(lines) == 2
    for ln in lines:
        assert "ModuleNotFoundError" in str(ln["error"]) and "litequeue" in str(ln["error"])
