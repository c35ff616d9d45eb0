"""``tidings consume --group`` in real processes: what it commits when it
prints nothing, and how it ends on SIGTERM (issue 8)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'consume.db'}"


def tidings(url: str, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``tidings --url URL ARGV`` in its own process."""
    return subprocess.run(
        [*TIDINGS, "--url", url, *argv],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@contextmanager
def background(url: str, *argv: str) -> Iterator[subprocess.Popen[str]]:
    """``tidings --url URL ARGV`` running in its own process (killed if still running)."""
    with subprocess.Popen(
        [*TIDINGS, "--url", url, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            yield proc
        finally:
            proc.kill()


def describe(url: str, group: str) -> dict[str, Any]:
    done = tidings(url, "--json", "groups", "describe", group)
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    return info


def committed(info: dict[str, Any]) -> dict[tuple[str, int], int | None]:
    return {(p["topic"], p["partition"]): p["committed"] for p in info["partitions"]}


def values(out: str) -> list[str]:
    return [json.loads(line)["value"] for line in out.splitlines()]


def test_a_new_group_that_prints_nothing_commits_where_it_started(url: str) -> None:
    """No --from, no committed offset, nothing printed: the start (the end)
    is committed, so records produced before the next run are not skipped."""
    tidings(url, "topics", "create", "quiet")
    tidings(url, "produce", "quiet", stdin="old-1\nold-2\n")
    first = tidings(url, "consume", "quiet", "--group", "late", "--timeout", "0.2")
    assert (first.returncode, first.stdout) == (0, "")
    assert committed(describe(url, "late")) == {("quiet", 0): 2}
    tidings(url, "produce", "quiet", stdin="new-1\nnew-2\n")
    second = tidings(url, "consume", "quiet", "--group", "late", "--timeout", "0.2")
    assert values(second.stdout) == ["new-1", "new-2"]


def test_sigterm_commits_what_was_printed_and_leaves_the_group(url: str) -> None:
    """SIGTERM ends consume like Ctrl-C: the printed records are committed,
    the member leaves at once (not when its session runs out), exit 143."""
    tidings(url, "topics", "create", "term", "--partitions", "2")
    tidings(url, "produce", "term", "--partition", "0", stdin="a\nb\nc\n")
    with background(url, "consume", "term", "--group", "g", "--from", "beginning") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        printed = [json.loads(proc.stdout.readline())["value"] for _ in range(3)]
        assert printed == ["a", "b", "c"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        assert proc.stderr.read() == ""  # no traceback
    info = describe(url, "g")
    assert info["members"] == []
    assert committed(info) == {("term", 0): 3, ("term", 1): 0}


def test_sigterm_while_waiting_commits_the_start_of_a_new_group(url: str) -> None:
    """A new group's consume killed by SIGTERM before anything arrived still
    commits where it started: what is produced next is read by the next run."""
    tidings(url, "topics", "create", "idle")
    tidings(url, "produce", "idle", stdin="before\n")
    with background(url, "consume", "idle", "--group", "fresh") as proc:
        _wait_for_owner(url, "fresh")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    assert committed(describe(url, "fresh")) == {("idle", 0): 1}
    tidings(url, "produce", "idle", stdin="after\n")
    again = tidings(url, "consume", "idle", "--group", "fresh", "--timeout", "0.2")
    assert values(again.stdout) == ["after"]


def _wait_for_owner(url: str, group: str) -> None:
    """Until the group shows a live member owning a partition."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = tidings(url, "--json", "groups", "describe", group)
        if done.returncode == 0 and any(p["owner"] for p in json.loads(done.stdout)["partitions"]):
            return
    raise AssertionError(f"no member of {group} took a partition")


def test_sigterm_ends_a_consume_blocked_on_a_full_pipe_committing_exactly_what_it_wrote(
    url: str,
) -> None:
    """A reader that stops reading does not keep SIGTERM out; the commit
    covers exactly the whole lines that reached the pipe."""
    tidings(url, "topics", "create", "flood")
    tidings(url, "produce", "flood", stdin="".join(f"{i:0300d}\n" for i in range(3000)))
    argv = ("consume", "flood", "--group", "slow", "--from", "beginning")
    with background(url, *argv) as proc:
        assert proc.stdout is not None
        _wait_until_pipe_holds(proc.stdout.fileno(), 60_000)  # the pipe is full: it blocks
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
        written = proc.stdout.read().count("\n")
    assert 0 < written < 3000
    assert committed(describe(url, "slow")) == {("flood", 0): written}


def _wait_until_pipe_holds(fd: int, size: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        if int.from_bytes(pending, sys.byteorder) >= size:
            return
        time.sleep(0.01)  # the pipe fills from another process: nothing to wait on
    raise AssertionError("the consumer never filled its pipe")
