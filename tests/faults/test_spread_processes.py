"""Spread rows under several processes on one SQLite file: producers whose
calls are spread rows (each process with its own cached heads) and single
appends, with a consumer group reading (and so merging) meanwhile. Every
acknowledged record is stored at the offset its ack names, offsets stay
dense, and the group reads every record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tidings import Client
from tidings.partitioner import keys_in_turn

PARTITIONS = 64
PRODUCERS = 3
CALLS = 40

_PRODUCER = """
import random, sys
from tidings import Client
url, me, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
rng = random.Random(me)
with Client(url) as client:
    producer = client.producer()
    for call in range(int(sys.argv[4])):
        if rng.random() < 0.8:  # spread over every partition: a spread row
            n = rng.randrange(len(keys) // 2, len(keys))
            values = [f"{me}-{call}-{i}".encode() for i in range(n)]
            metas = producer.send_batch("t", values, keys=[k.encode() for k in keys[:n]])
        else:  # one record into one partition: a spread row while any is pending
            values = [f"{me}-{call}-one".encode()]
            metas = producer.send_batch("t", values, partition=rng.randrange(64))
        for meta, value in zip(metas, values):
            print(meta.partition, meta.offset, value.decode(), flush=True)
"""

_GROUP_MEMBER = """
import os, sys, time
from tidings import Client
url, total, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seen = set()
deadline = time.monotonic() + 120
with Client(url) as client, client.consumer("t", group="g", start="beginning") as consumer:
    while time.monotonic() < deadline:
        got = consumer.poll(timeout=0.5, max_records=5000)
        for r in got:
            seen.add((r.partition, r.offset, r.value.decode()))
        consumer.commit()
        if len(seen) == total or (not got and os.path.exists(stop)):
            break
for p, o, v in sorted(seen):
    print(p, o, v)
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _producers(url: str, name: str) -> list[subprocess.Popen[str]]:
    """PRODUCERS producer processes, keyed over every partition."""
    keys = ",".join(k.decode() for k in keys_in_turn(2 * PARTITIONS, PARTITIONS))
    return [_spawn(_PRODUCER, url, f"{name}{i}", keys, str(CALLS)) for i in range(PRODUCERS)]


def _lines(out: str) -> set[tuple[int, int, str]]:
    rows = (line.split() for line in out.splitlines() if line.strip())
    return {(int(p), int(o), v) for p, o, v in rows}


@pytest.mark.timeout(240)
def test_producers_and_a_group_in_several_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
    producers = _producers(url, "p")
    acked: set[tuple[int, int, str]] = set()
    for proc in producers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        acked |= _lines(out)
    with Client(url) as client:
        stored = {
            (r.partition, r.offset, r.value.decode())
            for p in range(PARTITIONS)
            for r in client.engine.log.read("t", p, 0, 1_000_000)
        }
        ends = [i.next_offset for i in client.partitions("t")]
    assert stored == acked
    for p in range(PARTITIONS):
        assert sorted(o for q, o, _ in stored if q == p) == list(range(ends[p]))
    # A group member in its own process reads everything (merging as it goes).
    member = subprocess.run(
        [sys.executable, "-c", _GROUP_MEMBER, url, str(len(acked)), "-"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert member.returncode == 0, member.stderr[-3000:]
    assert _lines(member.stdout) == acked


@pytest.mark.timeout(240)
def test_a_group_reads_while_producers_spread(tmp_path: Path) -> None:
    """The group member starts first and reads while three producers
    append: its reads at the log's end merge what they find pending,
    between the producers' spread rows."""
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    with Client(url) as client:
        client.create_topic("t", partitions=PARTITIONS)
    stop = tmp_path / "producers-done"
    member = _spawn(_GROUP_MEMBER, url, "-1", str(stop))
    producers = _producers(url, "q")
    acked: set[tuple[int, int, str]] = set()
    try:
        for proc in producers:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            acked |= _lines(out)
        stop.touch()
        out, err = member.communicate(timeout=180)
        assert member.returncode == 0, err[-3000:]
    finally:
        for proc in (*producers, member):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _lines(out) == acked
