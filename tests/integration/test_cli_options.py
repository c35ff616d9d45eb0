"""The command line as a newcomer meets it: options anywhere, usage errors
before anything is created, one JSON format, messages in plain words."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings import __version__
from tidings.cli.main import build_parser, main

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opts.db'}"


def test_global_options_are_accepted_after_the_subcommand(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--url and --json work before, between or after the subcommand words."""
    assert main(["queues", "declare", "work", "--url", url]) == 0
    capsys.readouterr()
    assert main(["queues", "describe", "work", "--json", "--url", url]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "work"
    assert main(["queues", "--json", "list", "--url", url]) == 0
    assert [json.loads(x)["name"] for x in capsys.readouterr().out.splitlines()] == ["work"]
    assert main(["migrate", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["url"] == url


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"tidings {__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "q", "--max", "0"],
        ["get", "q", "--max", "-1"],
        ["get", "q", "--wait", "soon"],
        ["consume", "t", "--timeout", "-1"],
        ["consume", "t", "--from", "-1"],
        ["consume", "t", "--from", "yesterday"],
        ["consume", "t", "--max", "0"],
        ["consume", "bad name!"],
        ["topics", "create", "bad name!"],
        ["topics", "create", "t", "--partitions", "0"],
        ["topics", "add-partitions", "t", "--total", "0"],
        ["topics", "create", "t", "--retention-bytes", "lots"],
        ["produce", "t", "--partition", "-1"],
        ["queues", "declare", "q", "--lease", "forever"],
        ["queues", "declare", "q", "--max-deliveries", "0"],
        ["queues", "delete", "bad/name"],
        ["groups", "reset-offsets", "g", "--topic", "t", "--to", "-5"],
        ["dlq", "redrive", "q", "--id", "-1"],
        ["bench", "log", "--records", "0"],
    ],
)
def test_bad_input_is_a_usage_error_and_creates_nothing(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit 2 with a message naming the argument, and no ./tidings.db."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIDINGS_URL", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["topics", "create", "t", "--max-record-bytes", "0"], "max_record_bytes must be > 0"),
        (["queues", "declare", "q", "--lease", "0"], "lease must be > 0"),
    ],
)
def test_settings_refused_by_the_library_create_nothing_either(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIDINGS_URL", raising=False)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_postgresql_url_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An option libpq does not know is the URL's fault (exit 2), not an
    unavailable engine; the message is one line and names the option."""
    assert main(["--url", "postgresql://127.0.0.1/test?foo=bar", "topics", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '"foo"' in err and "EngineUnavailable" not in err


def test_unreachable_postgresql_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """libpq's two-line "is the server running" message comes out as one line."""
    assert main(["--url", "postgresql://127.0.0.1:1/test", "topics", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tidings: EngineUnavailable: ") and err.count("\n") == 1


def test_deleting_a_missing_queue_does_not_suggest_declaring_it(url: str, cli: Cli) -> None:
    code, _, err = cli(url, "queues", "delete", "nope")
    assert code == 1 and "declare" not in err
    assert err == (
        "tidings: QueueNotFound: there is no queue 'nope' to delete "
        "(`tidings queues list` shows the queues)\n"
    )


def test_json_is_compact_in_every_command(url: str, cli: Cli) -> None:
    """One format: every --json line is compact JSON, including consume,
    get, produce --print-acks and publish."""
    outputs = [
        cli(url, "--json", "topics", "create", "t"),
        cli(url, "--json", "produce", "t", "--print-acks", stdin="a\nb\n"),
        cli(url, "--json", "consume", "t", "--from", "beginning", "--max", "2"),
        cli(url, "--json", "queues", "declare", "q"),
        cli(url, "--json", "publish", "q", stdin="m\n"),
        cli(url, "--json", "get", "q", "--ack"),
        cli(url, "--json", "queues", "describe", "q"),
        cli(url, "--json", "groups", "list"),
    ]
    lines = [line for _, out, _ in outputs for line in out.splitlines()]
    assert len(lines) >= 8
    for line in lines:
        assert line == json.dumps(json.loads(line), separators=(",", ":"))
    acks = [json.loads(x) for x in outputs[1][1].splitlines()]
    assert acks == [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]
    assert json.loads(outputs[4][1]) == {"id": 1}


def test_every_option_and_argument_has_help() -> None:
    """``tidings … -h`` explains every option of every command."""
    missing = []
    for path, parser in _parsers(build_parser(), "tidings"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{path} {action.option_strings or action.dest}")
    assert missing == []


def _parsers(
    parser: argparse.ArgumentParser, path: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, f"{path} {name}")
    return found


def test_dead_letter_loop_error_lists_the_chain_in_order(url: str, cli: Cli) -> None:
    """q0 -> q1 -> … -> q5 -> q0 is named in the order the chain runs."""
    cli(url, "queues", "declare", "q5", "--dead-letter", "q0")
    for i in (4, 3, 2, 1):
        assert cli(url, "queues", "declare", f"q{i}", "--dead-letter", f"q{i + 1}")[0] == 0
    code, _, err = cli(url, "queues", "declare", "q0", "--dead-letter", "q1")
    assert code == 2
    assert "dead-letter chain q0 -> q1 -> q2 -> q3 -> q4 -> q5 -> q0 loops back" in err


def test_configuring_an_implicit_dead_letter_queue_says_how(url: str, cli: Cli) -> None:
    """Declaring, with settings, a dead-letter queue that was created with
    defaults: plain words (no QueueConfig repr) naming what differs, why it
    exists and what to do — and doing that works."""
    cli(url, "queues", "declare", "work", "--dead-letter", "work.dlq")
    code, _, err = cli(url, "queues", "declare", "work.dlq", "--max-length", "100")
    assert code == 1 and "QueueConfig(" not in err and err.count("\n") == 1
    assert "max_length is None (you asked 100)" in err
    assert "as the dead-letter queue of work" in err
    assert "`tidings queues delete work.dlq`" in err
    assert cli(url, "queues", "delete", "work.dlq")[0] == 0
    assert cli(url, "queues", "declare", "work.dlq", "--max-length", "100")[0] == 0
    _, out, _ = cli(url, "--json", "queues", "describe", "work.dlq")
    assert json.loads(out)["config"]["max_length"] == 100
