"""The queue side of the ``tidings`` command line, end to end on SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings.cli.main import main

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'q.db'}"


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_publish_get_ack_and_describe(url: str, cli: Cli) -> None:
    """publish prints ids; get --ack settles; describe --json has the four counts."""
    assert cli(url, "queues", "declare", "work")[0] == 0
    _, out, _ = cli(url, "publish", "work", stdin="a\nb\nc\n")
    assert out.split() == ["1", "2", "3"]
    _, out, _ = cli(url, "get", "work", "--max", "2", "--ack")
    got = lines(out)
    assert [g["body"] for g in got] == ["a", "b"] and got[0]["delivery_count"] == 1
    _, out, _ = cli(url, "--json", "queues", "describe", "work")
    stats = json.loads(out)
    assert {k: stats[k] for k in ("ready", "leased", "delayed", "dead_lettered")} == {
        "ready": 1,
        "leased": 0,
        "delayed": 0,
        "dead_lettered": 0,
    }


def test_get_without_action_keeps_the_lease(url: str, cli: Cli) -> None:
    """get with no action flag leaves the deliveries leased."""
    cli(url, "queues", "declare", "held", "--lease", "1m")
    cli(url, "publish", "held", stdin="x\n")
    cli(url, "get", "held")
    _, out, _ = cli(url, "--json", "queues", "describe", "held")
    assert json.loads(out)["leased"] == 1
    assert cli(url, "get", "held")[1] == ""


def test_idempotency_key_prints_the_original_id(url: str, cli: Cli) -> None:
    """Q3 from the CLI: the same key twice prints the same id once stored."""
    cli(url, "queues", "declare", "pay")
    first = cli(url, "publish", "pay", "--idempotency-key", "o-1", stdin="10\n")[1]
    again = cli(url, "publish", "pay", "--idempotency-key", "o-1", stdin="10\n")[1]
    assert first == again == "1\n"


def test_reject_dlq_list_and_redrive(url: str, cli: Cli) -> None:
    """get --reject → dlq list shows the reason → dlq redrive brings it back."""
    cli(url, "queues", "declare", "jobs", "--dead-letter", "jobs.dlq")
    cli(url, "publish", "jobs", stdin="boom\n")
    cli(url, "get", "jobs", "--reject")
    _, out, _ = cli(url, "dlq", "list", "jobs")
    (dead,) = lines(out)
    assert dead["reason"] == "rejected" and dead["body"] == "boom"
    assert cli(url, "dlq", "redrive", "jobs")[1].startswith("redrove 1")
    _, out, _ = cli(url, "get", "jobs", "--ack")
    assert lines(out)[0]["body"] == "boom"


def test_nack_with_delay_and_bad_input(url: str, cli: Cli) -> None:
    """--nack --delay hides the message; unknown queue exits 1; a bad duration exits 2."""
    cli(url, "queues", "declare", "n")
    cli(url, "publish", "n", stdin="m\n")
    cli(url, "get", "n", "--nack", "--delay", "1h")
    _, out, _ = cli(url, "--json", "queues", "describe", "n")
    assert json.loads(out)["delayed"] == 1
    assert cli(url, "get", "missing")[0] == 1
    code, _, err = cli(url, "queues", "declare", "x", "--lease", "forever")
    assert code == 2 and "lease" in err
    code, _, err = cli(url, "queues", "declare", "loop", "--dead-letter", "loop")
    assert code == 2 and "dead-letter" in err


def test_list_purge_and_delete(url: str, cli: Cli) -> None:
    """queues list --json shows each queue's settings; purge empties; delete removes."""
    cli(url, "queues", "declare", "p1", "--fifo", "--max-deliveries", "3")
    cli(url, "queues", "declare", "p2")
    _, out, _ = cli(url, "--json", "queues", "list")
    listed = {q["name"]: q for q in lines(out)}
    assert set(listed) == {"p1", "p2"} and listed["p1"]["fifo"] is True
    assert listed["p1"]["max_deliveries"] == 3
    cli(url, "publish", "p1", stdin="a\nb\n")
    _, out, _ = cli(url, "--json", "queues", "purge", "p1")
    assert json.loads(out)["purged"] == 2
    assert cli(url, "queues", "delete", "p1")[0] == 0
    assert cli(url, "queues", "describe", "p1")[0] == 1
    _, out, _ = cli(url, "--json", "queues", "list")
    assert [q["name"] for q in lines(out)] == ["p2"]


def test_dlq_purge_by_id_and_all(url: str, cli: Cli) -> None:
    """dlq purge --id deletes one dead letter; dlq purge the rest."""
    cli(url, "queues", "declare", "d", "--dead-letter", "d.dlq")
    cli(url, "publish", "d", stdin="1\n2\n3\n")
    cli(url, "get", "d", "--max", "3", "--reject")
    _, out, _ = cli(url, "dlq", "list", "d")
    first = lines(out)[0]["id"]
    _, out, _ = cli(url, "--json", "dlq", "purge", "d", "--id", str(first))
    assert json.loads(out)["purged"] == 1
    _, out, _ = cli(url, "dlq", "list", "d")
    assert [d["body"] for d in lines(out)] == ["2", "3"]
    _, out, _ = cli(url, "--json", "dlq", "purge", "d")
    assert json.loads(out)["purged"] == 2 and cli(url, "dlq", "list", "d")[1] == ""


def test_publish_delay_and_group_from_the_cli(url: str, cli: Cli) -> None:
    """--delay stores the messages delayed; --group orders them FIFO."""
    cli(url, "queues", "declare", "g", "--fifo")
    cli(url, "publish", "g", "--group", "o-1", stdin="first\nsecond\n")
    _, out, _ = cli(url, "get", "g", "--max", "5")
    assert [d["body"] for d in lines(out)] == ["first"]  # second waits for the first's ack
    cli(url, "queues", "declare", "later")
    cli(url, "publish", "later", "--delay", "1h", stdin="x\n")
    _, out, _ = cli(url, "--json", "queues", "describe", "later")
    assert json.loads(out)["delayed"] == 1


def test_declare_help_says_where_dead_letters_go_without_dead_letter(
    url: str, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --dead-letter a queue keeps its dead letters in its own
    <name>.dlq, created with the first one: the help says so, and so it is."""
    assert main(["queues", "declare", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: the queue's own <name>.dlq, created with the first dead letter" in help_text
    cli(url, "queues", "declare", "plain")
    _, out, _ = cli(url, "queues", "list")
    assert "plain.dlq" not in out  # nothing dead-lettered yet: no queue
    cli(url, "publish", "plain", stdin="boom\n")
    cli(url, "get", "plain", "--reject")
    _, out, _ = cli(url, "--json", "queues", "describe", "plain.dlq")
    assert json.loads(out)["ready"] == 1
