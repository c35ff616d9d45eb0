"""The queue side of the ``tidings`` command line, end to end on SQLite."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from tidings.cli.main import main


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'q.db'}"


def run(
    url: str, *argv: str, stdin: str = "", capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    capsys.readouterr()
    r, w = os.pipe()
    os.write(w, stdin.encode())
    os.close(w)
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(os.fdopen(r, "rb"))
    try:
        code = main(["--url", url, *argv])
    finally:
        sys.stdin.close()
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_publish_get_ack_and_describe(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """publish prints ids; get --ack settles; describe --json has the four counts."""
    assert run(url, "queues", "declare", "work", capsys=capsys)[0] == 0
    _, out, _ = run(url, "publish", "work", stdin="a\nb\nc\n", capsys=capsys)
    assert out.split() == ["1", "2", "3"]
    _, out, _ = run(url, "get", "work", "--max", "2", "--ack", capsys=capsys)
    got = lines(out)
    assert [g["body"] for g in got] == ["a", "b"] and got[0]["delivery_count"] == 1
    _, out, _ = run(url, "--json", "queues", "describe", "work", capsys=capsys)
    stats = json.loads(out)
    assert {k: stats[k] for k in ("ready", "leased", "delayed", "dead_lettered")} == {
        "ready": 1,
        "leased": 0,
        "delayed": 0,
        "dead_lettered": 0,
    }


def test_get_without_action_keeps_the_lease(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """get with no action flag leaves the deliveries leased."""
    run(url, "queues", "declare", "held", "--lease", "1m", capsys=capsys)
    run(url, "publish", "held", stdin="x\n", capsys=capsys)
    run(url, "get", "held", capsys=capsys)
    _, out, _ = run(url, "--json", "queues", "describe", "held", capsys=capsys)
    assert json.loads(out)["leased"] == 1
    assert run(url, "get", "held", capsys=capsys)[1] == ""


def test_idempotency_key_prints_the_original_id(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Q3 from the CLI: the same key twice prints the same id once stored."""
    run(url, "queues", "declare", "pay", capsys=capsys)
    first = run(url, "publish", "pay", "--idempotency-key", "o-1", stdin="10\n", capsys=capsys)[1]
    again = run(url, "publish", "pay", "--idempotency-key", "o-1", stdin="10\n", capsys=capsys)[1]
    assert first == again == "1\n"


def test_reject_dlq_list_and_redrive(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """get --reject → dlq list shows the reason → dlq redrive brings it back."""
    run(url, "queues", "declare", "jobs", "--dead-letter", "jobs.dlq", capsys=capsys)
    run(url, "publish", "jobs", stdin="boom\n", capsys=capsys)
    run(url, "get", "jobs", "--reject", capsys=capsys)
    _, out, _ = run(url, "dlq", "list", "jobs", capsys=capsys)
    (dead,) = lines(out)
    assert dead["reason"] == "rejected" and dead["body"] == "boom"
    assert run(url, "dlq", "redrive", "jobs", capsys=capsys)[1].startswith("redrove 1")
    _, out, _ = run(url, "get", "jobs", "--ack", capsys=capsys)
    assert lines(out)[0]["body"] == "boom"


def test_nack_with_delay_and_bad_input(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--nack --delay hides the message; unknown queue exits 1; a bad duration exits 2."""
    run(url, "queues", "declare", "n", capsys=capsys)
    run(url, "publish", "n", stdin="m\n", capsys=capsys)
    run(url, "get", "n", "--nack", "--delay", "1h", capsys=capsys)
    _, out, _ = run(url, "--json", "queues", "describe", "n", capsys=capsys)
    assert json.loads(out)["delayed"] == 1
    assert run(url, "get", "missing", capsys=capsys)[0] == 1
    code, _, err = run(url, "queues", "declare", "x", "--lease", "forever", capsys=capsys)
    assert code == 2 and "lease" in err
    code, _, err = run(url, "queues", "declare", "loop", "--dead-letter", "loop", capsys=capsys)
    assert code == 2 and "dead-letter" in err
