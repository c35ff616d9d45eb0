"""`tidings failed …` and `tidings run` end to end on SQLite (R3; issue 10)."""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidings import Client
from tidings.ports.failed import FailedFilter
from tidings.runtime.loading import load_app
from tidings.runtime.runner import Runner
from tidings.runtime.triage import FailedEvents

Cli = Callable[..., tuple[int, str, str]]

APP = """
from tidings.runtime import App, RetryPolicy

app = App("cliapp")
FIXED = set()
SEEN = []


@app.handler(topic="orders", policy=RetryPolicy(immediate=0, delayed=0))
def on_order(payload: bytes) -> None:
    if payload.startswith(b"bad") and payload not in FIXED:
        raise ValueError("bad order " + payload.decode())
    SEEN.append(payload)


@app.handler(queue="mails", policy=RetryPolicy(immediate=0, delayed=0))
def on_mail(payload: bytes) -> None:
    if payload.startswith(b"bad") and payload not in FIXED:
        raise PermissionError("smtp refused")
    SEEN.append(payload)
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, object]]:
    """A SQLite engine with 3 parked orders and 2 parked mails; the app module."""
    module = f"cliapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    app = load_app(f"{module}:app")
    with Client(url) as client:
        client.create_topic("orders")
        client.declare_queue("mails")
        for i in range(3):
            client.produce("orders", f"bad-o{i}".encode(), key=f"k{i}")
        for i in range(2):
            client.publish("mails", f"bad-m{i}".encode())
        with Runner(app, client=client):
            f = FailedEvents(client)
            deadline = time.monotonic() + 20
            while len(f.find()) < 5:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    yield url, module, app
    sys.modules.pop(module, None)


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_list_filters_groups_and_show(cli: Cli, setup: tuple[str, str, object]) -> None:
    url, _, _ = setup
    code, out, _ = cli(url, "--json", "failed", "list")
    assert code == 0 and len(lines(out)) == 5
    code, out, _ = cli(url, "--json", "failed", "list", "--queue", "mails")
    assert {e["queue"] for e in lines(out)} == {"mails"} and len(lines(out)) == 2
    code, out, _ = cli(
        url, "--json", "failed", "list", "--exception-type", "ValueError", "--app", "cliapp"
    )
    assert len(lines(out)) == 3
    code, out, _ = cli(url, "--json", "failed", "list", "--since", "2999-01-01T00:00:00")
    assert code == 0 and out == ""
    code, out, _ = cli(url, "--json", "failed", "groups")
    groups = {g["exception_type"]: g for g in lines(out)}
    assert groups["ValueError"]["events"] == 3 and groups["PermissionError"]["events"] == 2
    assert "on_order" in str(groups["ValueError"]["call_site"])
    first = lines(cli(url, "--json", "failed", "list")[1])[0]
    code, out, _ = cli(url, "--json", "failed", "show", str(first["id"]))
    shown = lines(out)[0]
    assert shown["payload"] == first["payload"] and "Traceback" in str(shown["traceback"])
    code, out, _ = cli(url, "failed", "show", str(first["id"]))  # for people
    assert code == 0 and "exception_type" in out and "Traceback" in out
    code, out, _ = cli(url, "failed", "list")
    assert code == 0 and "ValueError" in out


def test_every_triage_action_round_trips_through_the_cli(
    cli: Cli, setup: tuple[str, str, object]
) -> None:
    url, module, _ = setup
    events = lines(cli(url, "--json", "failed", "list", "--topic", "orders")[1])
    o0, o1, o2 = (int(str(e["id"])) for e in events)
    mails = [
        int(str(e["id"]))
        for e in lines(cli(url, "--json", "failed", "list", "--queue", "mails")[1])
    ]

    code, out, _ = cli(url, "--json", "failed", "discard", str(o0), "--actor", "bob")
    assert code == 0 and lines(out)[0]["outcome"] == "ok"
    code, out, _ = cli(url, "--json", "failed", "republish", str(o1))
    assert code == 0 and str(lines(out)[0]["detail"]).startswith("orders/0@")
    # replay still broken: parked again with a replay count, exit 1
    code, out, _ = cli(url, "--json", "failed", "replay", str(o2), "--load", f"{module}:app")
    result = lines(out)[0]
    assert code == 1 and result["outcome"] == "failed" and result["parked_again"]
    again = lines(cli(url, "--json", "failed", "show", str(result["parked_again"]))[1])[0]
    assert again["replay_count"] == 1 and again["status"] == "parked"
    sys.modules[module].FIXED.add(b"bad-o2")  # type: ignore[attr-defined]
    code, out, _ = cli(
        url, "--json", "failed", "replay", str(again["id"]), "--load", f"{module}:app"
    )
    assert code == 0 and lines(out)[0]["outcome"] == "ok"
    assert b"bad-o2" in sys.modules[module].SEEN  # type: ignore[attr-defined]
    # bulk with dry run, then for real
    code, out, _ = cli(url, "--json", "failed", "discard", "--queue", "mails", "--dry-run")
    assert code == 0 and [r["outcome"] for r in lines(out)] == ["dry-run", "dry-run"]
    assert len(lines(cli(url, "--json", "failed", "list", "--queue", "mails")[1])) == 2
    code, out, _ = cli(url, "--json", "failed", "republish", "--queue", "mails")
    assert code == 0 and sorted(r["event_id"] for r in lines(out)) == sorted(mails)
    with Client(url) as client:
        assert client.queue_stats("mails").ready == 2  # republished to the original queue
        assert client.partitions("orders")[0].next_offset == 4  # o1 republished
    # every action recorded, with who and the outcome
    code, out, _ = cli(url, "--json", "failed", "actions")
    acts = [(a["event_id"], a["action"], a["outcome"]) for a in lines(out)]
    assert acts[:3] == [(o0, "discard", "ok"), (o1, "republish", "ok"), (o2, "replay", "failed")]
    assert len(acts) == 6
    assert lines(cli(url, "--json", "failed", "actions", str(o0))[1])[0]["actor"] == "bob"
    code, out, _ = cli(url, "failed", "actions")
    assert code == 0 and "republish" in out
    code, out, _ = cli(url, "--json", "failed", "list", "--status", "any")
    assert {e["status"] for e in lines(out)} == {"discarded", "republished", "replayed"}


def test_bad_triage_input_is_a_typed_error_and_changes_nothing(
    cli: Cli, setup: tuple[str, str, object]
) -> None:
    url, _, _ = setup
    ids = [int(str(e["id"])) for e in lines(cli(url, "--json", "failed", "list")[1])]
    code, _, err = cli(url, "failed", "discard", "424242")
    assert code == 1 and "FailedEventNotFound" in err
    code, _, err = cli(url, "failed", "discard", str(ids[0]), "424242")
    assert code == 1 and "FailedEventNotFound" in err
    cli(url, "failed", "discard", str(ids[1]))
    code, _, err = cli(url, "failed", "republish", str(ids[0]), str(ids[1]))
    assert code == 1 and "AlreadyResolved" in err
    code, _, err = cli(url, "failed", "discard")
    assert code == 2 and "--all" in err
    code, _, err = cli(url, "failed", "discard", "1", "--queue", "mails")
    assert code == 2
    code, _, err = cli(url, "failed", "replay", str(ids[0]), "--load", "nowhere_module:app")
    assert code == 2 and "cannot import" in err
    code, _, err = cli(url, "failed", "list", "--since", "yesterday")
    assert code == 2
    with Client(url) as client:
        assert len(FailedEvents(client).find(FailedFilter())) == 4  # only the one discard
        assert len(FailedEvents(client).actions()) == 1


def test_run_with_an_unknown_app_path_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, _, err = cli(url, "run", "no_such_module_xyz:app")
    assert code == 2 and "cannot import" in err
    code, _, err = cli(url, "run", "json")
    assert code == 2 and "module:attribute" in err
