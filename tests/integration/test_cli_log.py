"""The log side of the ``tidings`` command line, end to end on SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tidings.engines.sql.migrations import SCHEMA_VERSION

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_topic_lifecycle(url: str, cli: Cli) -> None:
    """create / list / describe / add-partitions / delete, tables and --json."""
    assert cli(url, "topics", "create", "orders", "--partitions", "3", "--retention", "7d")[0] == 0
    code, out, _ = cli(url, "--json", "topics", "list")
    (topic,) = [json.loads(line) for line in out.splitlines()]
    assert (topic["name"], topic["partitions"], topic["retention_s"]) == ("orders", 3, 604800.0)
    code, out, _ = cli(url, "topics", "describe", "orders")
    assert code == 0 and "next_offset" in out and len(out.splitlines()) == 5
    assert cli(url, "topics", "add-partitions", "orders", "--total", "4")[0] == 0
    code, out, _ = cli(url, "--json", "topics", "describe", "orders")
    assert len(json.loads(out)["partition_info"]) == 4
    assert cli(url, "topics", "delete", "orders")[0] == 0
    assert cli(url, "--json", "topics", "list")[1] == ""


def test_bad_name_is_a_usage_error_and_unknown_topic_a_failure(url: str, cli: Cli) -> None:
    """Exit codes: 2 for bad input (with the rule), 1 for a missing topic."""
    code, _, err = cli(url, "topics", "create", "bad name!")
    assert code == 2 and "invalid topic name" in err
    code, _, err = cli(url, "topics", "describe", "nope")
    assert code == 1 and "TopicNotFound" in err and "tidings topics create nope" in err


def test_produce_key_field_routes_and_print_acks_follow_input(url: str, cli: Cli) -> None:
    """--key-field: same key → same partition; --print-acks: one line per input, in order."""
    cli(url, "topics", "create", "b", "--partitions", "4")
    lines = [json.dumps({"id": f"k{i % 3}", "n": i}) for i in range(30)]
    code, out, _ = cli(
        url, "produce", "b", "--key-field", "id", "--print-acks", stdin="\n".join(lines) + "\n"
    )
    acks = [tuple(map(int, line.split())) for line in out.splitlines()]
    assert code == 0 and len(acks) == 30
    by_key: dict[str, set[int]] = {}
    for i, (partition, _) in enumerate(acks):
        by_key.setdefault(f"k{i % 3}", set()).add(partition)
    assert all(len(p) == 1 for p in by_key.values())
    code, out, _ = cli(url, "consume", "b", "--from", "beginning", "--max", "30", "--timeout", "2")
    records = [json.loads(line) for line in out.splitlines()]
    stored = {(r["partition"], r["offset"]): json.loads(r["value"])["n"] for r in records}
    assert [stored[a] for a in acks] == list(range(30))


def test_bad_key_field_line_stops_with_earlier_lines_stored(url: str, cli: Cli) -> None:
    """A line without the key field: exit 1, earlier lines stored, it and later ones not."""
    cli(url, "topics", "create", "kf")
    stdin = '{"id": "a"}\nnot json\n{"id": "c"}\n'
    code, out, err = cli(url, "produce", "kf", "--key-field", "id", "--print-acks", stdin=stdin)
    assert code == 1 and "line 2" in err and out.splitlines() == ["0 0"]
    code, out, _ = cli(url, "consume", "kf", "--from", "beginning", "--timeout", "0.5")
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["a"]


def test_group_consume_commits_what_it_printed_and_resumes(url: str, cli: Cli) -> None:
    """--group --max N commits exactly the N printed; the next run resumes after them."""
    cli(url, "topics", "create", "g")
    cli(url, "produce", "g", stdin="".join(f"v{i}\n" for i in range(10)))
    _, out, _ = cli(url, "consume", "g", "--group", "app", "--from", "beginning", "--max", "4")
    assert [json.loads(x)["value"] for x in out.splitlines()] == ["v0", "v1", "v2", "v3"]
    _, out, _ = cli(url, "consume", "g", "--group", "app", "--timeout", "0.5")
    assert [json.loads(x)["value"] for x in out.splitlines()] == [f"v{i}" for i in range(4, 10)]
    _, out, _ = cli(url, "--json", "groups", "describe", "app")
    assert json.loads(out)["partitions"][0]["lag"] == 0
    assert (
        cli(url, "groups", "reset-offsets", "app", "--topic", "g", "--to", "beginning")[1]
        == "g 0 0\n"
    )
    _, out, _ = cli(url, "consume", "g", "--group", "app", "--max", "1")
    assert json.loads(out)["value"] == "v0"
    assert "app" in cli(url, "groups", "list")[1]


def test_consume_from_iso_time(url: str, cli: Cli) -> None:
    """--from ISO-TIME starts at the first record appended at or after it."""
    cli(url, "topics", "create", "t")
    cli(url, "produce", "t", stdin="early\n")
    _, out, _ = cli(url, "consume", "t", "--from", "beginning", "--max", "1")
    ts = json.loads(out)["timestamp"]
    cli(url, "produce", "t", stdin="late\n")
    from datetime import UTC, datetime

    when = datetime.fromtimestamp((ts + 1) / 1000, tz=UTC).isoformat()
    code, out, _ = cli(url, "consume", "t", "--from", when, "--timeout", "0.5")
    values = [json.loads(x)["value"] for x in out.splitlines()]
    assert code == 0 and values in (["late"], ["early", "late"][1:])
    code, _, err = cli(url, "consume", "t", "--from", "yesterday")
    assert code == 2 and "ISO time" in err


def test_print_acks_arrive_while_stdin_stays_open(url: str, cli: Cli) -> None:
    """--print-acks in a real process: each ack is printed before the next line is written."""
    cli(url, "topics", "create", "live")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli.main", "--url", url, "produce", "live", "--print-acks"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    for i in range(3):
        proc.stdin.write(f"line{i}\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == f"0 {i}\n"
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()


def test_migrate_creates_the_schema_and_reports_its_version(url: str, cli: Cli) -> None:
    """``tidings migrate`` on a new file creates the schema, brings it to
    the current version and prints it."""
    code, out, _ = cli(url, "--json", "migrate")
    assert code == 0 and json.loads(out)["schema_version"] == SCHEMA_VERSION >= 3
