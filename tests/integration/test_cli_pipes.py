"""The command line on real pipes, in real processes: a reader that goes
away (``| head``), input that streams, and input that stops half-way."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

TIDINGS = [sys.executable, "-m", "tidings.cli.main"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pipes.db'}"


def tidings(url: str, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TIDINGS, "--url", url, *argv],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def running(url: str, *argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """``tidings`` with pipes on stdin, stdout and stderr (unbuffered bytes)."""
    with subprocess.Popen(
        [*TIDINGS, "--url", url, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    ) as proc:
        try:
            yield proc
        finally:
            proc.kill()


def line_within(stream: IO[bytes] | None, seconds: float) -> bytes:
    """The next line of ``stream``, failing if none comes within ``seconds``."""
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"no output within {seconds}s"
    return stream.readline()


def stats(url: str, queue: str) -> dict[str, Any]:
    done = tidings(url, "--json", "queues", "describe", queue)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_get_into_a_closed_pipe_acks_only_what_was_written(url: str) -> None:
    """``get --max 3000 --ack`` whose reader leaves after one line: exit
    quietly; what reached the pipe is acked, the rest is back at once
    (ready, not leased until the lease runs out) with no delivery counted:
    with max_deliveries=1 none of them is dead-lettered."""
    tidings(url, "queues", "declare", "work", "--max-deliveries", "1")
    body = "x" * 200
    tidings(url, "publish", "work", stdin="".join(f"{i}-{body}\n" for i in range(3000)))
    with running(url, "get", "work", "--max", "3000", "--ack") as proc:
        assert json.loads(line_within(proc.stdout, 30))["body"].startswith("0-")
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader goes away, like head -1
        assert proc.wait(timeout=30) == 141
        assert proc.stderr.read() == b""  # no BrokenPipeError traceback
    left = stats(url, "work")
    assert left["leased"] == 0 and left["dead_lettered"] == 0
    assert 1 <= 3000 - left["ready"] < 3000  # some were written and acked, not all
    again = tidings(url, "get", "work", "--max", "3000", "--ack")
    assert len(again.stdout.splitlines()) == left["ready"]


def test_head_after_consume_and_topics_list_is_quiet(url: str) -> None:
    """Through a real ``| head -1``: one line, nothing on stderr; a group's
    commit covers at least the line head printed, never all it read."""
    tidings(url, "topics", "create", "many")
    tidings(url, "produce", "many", stdin="".join(f"{i:0200d}\n" for i in range(3000)))
    command = " ".join(
        [*TIDINGS, "--url", url, "consume", "many", "--group", "h", "--from", "beginning"]
    )
    done = subprocess.run(
        ["bash", "-c", f"{command} | head -1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == "" and len(done.stdout.splitlines()) == 1
    info = json.loads(tidings(url, "--json", "groups", "describe", "h").stdout)
    (part,) = info["partitions"]
    assert 1 <= part["committed"] < 3000 and info["members"] == []


def test_publish_streams_each_line_and_keeps_what_it_read_on_ctrl_c(url: str) -> None:
    """publish prints an id per line as it arrives (before stdin ends),
    strips CRLF, and Ctrl-C keeps what was already published."""
    tidings(url, "queues", "declare", "stream")
    with running(url, "publish", "stream") as proc:
        assert proc.stdin is not None
        proc.stdin.write(b"first\r\n")
        assert line_within(proc.stdout, 30) == b"1\n"
        proc.stdin.write(b"second\n")
        assert line_within(proc.stdout, 30) == b"2\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    got = tidings(url, "get", "stream", "--max", "10", "--ack").stdout.splitlines()
    assert [json.loads(g)["body"] for g in got] == ["first", "second"]


def test_produce_oversize_line_keeps_the_lines_before_it(url: str) -> None:
    """A value over max_record_bytes in the middle of one batch: the lines
    before it are stored, and the error says exactly how many."""
    tidings(url, "topics", "create", "small", "--max-record-bytes", "100")
    stdin = "ok-1\nok-2\n" + "x" * 200 + "\nok-4\n"
    done = tidings(url, "produce", "small", "--print-acks", stdin=stdin)
    assert done.returncode == 1 and done.stdout.splitlines() == ["0 0", "0 1"]
    assert done.stderr == (
        "tidings: line 3: a value of 200 bytes exceeds topic 'small''s max_record_bytes=100; "
        "2 record(s) stored (lines 1-2); line 3 and later were not\n"
    )
    out = tidings(url, "consume", "small", "--from", "beginning", "--timeout", "0.2").stdout
    assert [json.loads(r)["value"] for r in out.splitlines()] == ["ok-1", "ok-2"]


def test_publish_oversize_and_full_queue_say_what_was_stored(url: str) -> None:
    """publish: a body over max_body_bytes stops after the lines before it;
    a batch refused by the engine (QueueFull) says none of it was stored."""
    tidings(url, "queues", "declare", "big")
    stdin = "a\nb\n" + "x" * ((1 << 20) + 1) + "\nd\n"
    done = tidings(url, "publish", "big", stdin=stdin)
    assert done.returncode == 1 and done.stdout.split() == ["1", "2"]
    assert "line 3: a value of 1048577 bytes exceeds queue 'big''s max_body_bytes" in done.stderr
    assert "2 message(s) stored (lines 1-2)" in done.stderr
    assert stats(url, "big")["ready"] == 2
    tidings(url, "queues", "declare", "full", "--max-length", "3")
    done = tidings(url, "publish", "full", stdin="1\n2\n3\n4\n")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("tidings: QueueFull: ")
    assert done.stderr.endswith("; 0 message(s) stored (none); line 1 and later were not\n")


def test_publish_with_an_idempotency_key_reads_one_message(url: str) -> None:
    """--idempotency-key: all of stdin is one message (its final CRLF removed)."""
    tidings(url, "queues", "declare", "one")
    done = tidings(url, "publish", "one", "--idempotency-key", "k", stdin="a\nb\r\n")
    assert done.stdout == "1\n"
    got = tidings(url, "get", "one", "--ack").stdout
    assert json.loads(got)["body"] == "a\nb"
