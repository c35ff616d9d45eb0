"""``tidings demo`` in a real process: every check of its summary, the
databases it keeps, and bad input (an existing --keep directory, a path
that cannot be created, Ctrl-C midway)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.sqlite

TIDINGS = str(Path(sys.executable).parent / "tidings")
CHECKS = {"relayed", "reached", "once", "recovered", "parked_once", "triaged", "bootstrap",
          "dead_letters"}  # fmt: skip


def demo(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, "demo", *argv], capture_output=True, text=True,
                          timeout=90, check=False, env={**os.environ, **(env or {})})  # fmt: skip


def test_json_summary_every_check_passes_and_the_temporary_files_go() -> None:
    # A short TMPDIR: the engine's wake-up sockets live next to the database
    # (or under TMPDIR) and socket paths are limited to ~107 bytes.
    with tempfile.TemporaryDirectory(prefix="td-", dir="/tmp") as name:
        _json_summary(Path(name))


def _json_summary(tmp: Path) -> None:
    t0 = time.monotonic()
    done = demo("--json", env={"TMPDIR": str(tmp)})
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()  # progress went to stderr
    summary = json.loads(line)
    assert {c["id"] for c in summary["checks"]} == CHECKS
    assert [c for c in summary["checks"] if not c["ok"]] == []
    assert summary["ok"] is True and summary["dir"] is None
    c = summary["counts"]
    assert c["events_forwarded"] == c["events_written"] > c["bookings"] > 0
    for group in ("email", "fraud", "loyalty", "billing"):
        g = c["groups"][group]
        assert g["effects"] == c["bookings"] and g["lag"] == 0
        assert g["deliveries"] > g["effects"]  # updates and the republished duplicate
    assert c["failed_events"] == 1 and c["bootstrapped"] == c["bookings"]
    assert c["refunds"] + c["dead_letters"] == c["cancelled"] and c["dead_letters"] == 2
    assert "recovered" in done.stderr and "parked failed event" in done.stderr
    assert list(tmp.iterdir()) == []  # the temporary databases were removed
    assert wall < 60


def test_keep_leaves_the_databases_and_the_commands_to_explore_them(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    done = demo("--keep", str(kept))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    commands = [ln.strip() for ln in done.stdout.split("explore them:")[1].splitlines()]
    export, *tidings = [c for c in commands if c]
    url = export.split("=", 1)[1]
    assert url == f"sqlite:///{kept / 'bus.db'}"
    for command in tidings:
        ran = subprocess.run(command.replace("tidings", TIDINGS, 1), shell=True,
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, "TIDINGS_URL": url}, check=False)  # fmt: skip
        assert ran.returncode == 0 and ran.stdout, f"{command}: {ran.stderr}"
    dlq = subprocess.run([TIDINGS, "--url", url, "--json", "dlq", "list", "returns"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert sorted(json.loads(json.loads(x)["body"])["booking"] for x in dlq.splitlines()) == [
        "b-016", "b-040"]  # fmt: skip


def test_keep_on_an_existing_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("mine")
    done = demo("--keep", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "exists" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("where", ["under-a-file", "/proc"])
def test_a_path_that_cannot_be_created_is_one_clear_line(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # no directory can be made under a file or in /proc, even as root
    path = blocker / "demo" if where == "under-a-file" else Path("/proc/tidings-demo")
    done = demo("--keep", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("tidings: cannot create") and len(done.stderr.splitlines()) == 1


def test_url_is_refused(tmp_path: Path) -> None:
    done = demo("--url", f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2 and "--keep" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_midway_stops_cleanly_and_the_kept_databases_are_consistent(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "kept"
    proc = subprocess.Popen([TIDINGS, "demo", "--keep", str(kept), "--pace", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "bookings written" in line:  # services are running, bookings still coming
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert err.splitlines() == [f"tidings: interrupted: every service stopped cleanly; "
                                f"what was committed is in {kept}"]  # fmt: skip
    assert "summary" not in out
    _assert_consistent(kept)


def _assert_consistent(kept: Path) -> None:
    """Every committed booking change has its event in the outbox (O1), the
    relay's marks are sane, and the engine's groups can be described."""
    app = sqlite3.connect(kept / "app.db")
    versions, cancelled = app.execute(
        "SELECT SUM(version), SUM(status = 'cancelled') FROM bookings").fetchone()  # fmt: skip
    app.close()
    shards = _json_lines(["outbox", "status", "--db", f"sqlite:///{kept / 'app.db'}"], kept)
    assert versions > 0
    assert sum(s["forwarded"] + s["pending"] for s in shards) == versions + cancelled
    assert all(s["owner"] is None for s in shards)  # the relay gave its leases up
    for group in ("email", "fraud", "loyalty", "billing"):
        (info,) = _json_lines(["groups", "describe", group], kept)
        assert info["members"] == []  # every service left its group
        assert all(p["committed"] is None or p["committed"] <= p["next_offset"]
                   for p in info["partitions"])  # fmt: skip


def _json_lines(argv: list[str], kept: Path) -> list[dict[str, Any]]:
    done = subprocess.run([TIDINGS, "--url", f"sqlite:///{kept / 'bus.db'}", "--json", *argv],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


def _always_acts(self: Any, booking: Any) -> None:
    """A service without its idempotency guard: every delivery has an effect."""
    with self.lock:
        self.deliveries += 1
        self.seen[booking.id] = booking.version
    self.act(booking)


@pytest.mark.parametrize(
    ("broken", "failing"),
    [
        ("no idempotency guard", ["once"]),
        ("the fix never deployed", ["reached", "parked_once", "triaged"]),
        ("every refund rejected", ["dead_letters"]),
    ],
)
def test_a_broken_story_fails_exactly_its_checks_and_exits_1(
    broken: str, failing: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The checks are not vacuous: break one thing in the example and the
    checks that depend on it fail, the others still pass, exit code 1."""
    from tidings.cli.demo import _example
    from tidings.cli.main import main

    booking = _example()
    monkeypatch.setattr(booking.story, "WAIT_S", 3.0)  # a stalled stage gives up sooner
    if broken == "no idempotency guard":
        monkeypatch.setattr(booking.services.Service, "receive", _always_acts)
    elif broken == "the fix never deployed":
        monkeypatch.setattr(booking.services.Billing, "fix", lambda self: None)
    else:
        monkeypatch.setattr(booking.returns.ReturnsDesk, "_handle", _reject_all)
    assert main(["demo", "--json", "--pace", "0"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False
    assert [c["id"] for c in summary["checks"] if not c["ok"]] == failing


def _reject_all(self: Any, worker: str, client: Any, delivery: Any) -> None:
    client.reject(delivery, reason="a bug rejects every refund")
    with self.lock:
        self.rejected.append(json.loads(delivery.body)["booking"])


def test_ctrl_c_without_keep_removes_the_temporary_files() -> None:
    with tempfile.TemporaryDirectory(prefix="td-", dir="/tmp") as tmp:
        proc = subprocess.Popen([TIDINGS, "demo", "--pace", "0.2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TMPDIR": tmp})  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if "bookings written" in line:
                break
        assert list(Path(tmp).iterdir()) != []  # the story is running in there
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        assert err.splitlines() == ["tidings: interrupted: every service stopped cleanly"]
        assert list(Path(tmp).iterdir()) == []


def test_a_reader_that_goes_away_ends_it_quietly_with_141(tmp_path: Path) -> None:
    """``tidings demo | head -2``: no handler fails on the closed pipe (the
    kept story holds only billing's poison event, triaged), exit code 141."""
    kept = tmp_path / "kept"
    proc = subprocess.Popen([TIDINGS, "demo", "--keep", str(kept)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.readline()
    proc.stdout.close()  # before the fraud handler reports its first timeout
    assert proc.wait(timeout=60) == 141
    with proc.stderr:
        assert proc.stderr.read() == ""
    failed = _json_lines(["failed", "list", "--status", "any"], kept)
    assert [(e["app"], e["exception_type"], e["status"]) for e in failed] == [
        ("billing", "UnicodeEncodeError", "republished")]  # fmt: skip
