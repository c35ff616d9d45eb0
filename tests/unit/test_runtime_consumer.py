"""What the runtime needs from the Consumer: pause/resume per partition, a
revoke listener, a session that can be let go (issue 10)."""

from __future__ import annotations

import time

import pytest

from tidings import Client, ConfigurationError, GroupConfig, TopicPartition

FAST = GroupConfig(session_timeout_s=0.6, heartbeat_interval_s=0.05)


def test_pause_skips_partitions_until_resumed() -> None:
    with Client("memory://") as client:
        client.create_topic("t", partitions=2)
        for p in (0, 1):
            client.produce("t", b"x%d" % p, partition=p)
        with client.consumer("t", group="g", start="beginning", auto_commit=False) as c:
            c.poll(timeout=0)  # join
            c.seek_to("beginning")
            p0 = TopicPartition("t", 0)
            c.pause([p0])
            assert c.paused() == {p0}
            got = c.poll(timeout=0.2)
            assert {r.partition for r in got} == {1}
            assert c.poll(timeout=0.1) == []
            c.resume([p0])
            assert [r.partition for r in c.poll(timeout=1)] == [0]
            with pytest.raises(ConfigurationError):
                c.pause([TopicPartition("t", 7)])


def test_pause_puts_back_what_was_read_ahead_for_the_partition() -> None:
    """Iteration reads ahead; pausing a partition must not hand out (or skip)
    the records already read for it: they come again after resume."""
    with Client("memory://") as client:
        client.create_topic("t", partitions=2)
        for i in range(6):
            client.produce("t", b"v%d" % i, partition=i % 2)
        c = client.consumer("t", start="beginning", auto_commit=False)
        it = iter(c)
        first = next(it)  # the rest of the poll waits in the read-ahead
        tp = TopicPartition("t", first.partition)
        other = 1 - first.partition
        c.pause([tp])
        rest = [next(it) for _ in range(3)]
        assert {r.partition for r in rest} == {other}
        c.resume([tp])
        again = [next(it) for _ in range(2)]
        assert [(r.partition, r.offset) for r in again] == [(tp.partition, 1), (tp.partition, 2)]
        c.close()


def test_on_revoke_runs_before_partitions_are_released() -> None:
    revoked: list[set[TopicPartition]] = []
    with Client("memory://") as client:
        client.create_topic("t", partitions=2)
        a = client.consumer(
            "t", group="g", auto_commit=False, on_revoke=revoked.append, group_config=FAST
        )
        a.poll(timeout=0)
        assert len(a.assignment()) == 2
        b = client.consumer("t", group="g", auto_commit=False, group_config=FAST)
        deadline = time.monotonic() + 10
        while len(b.assignment()) != 1:
            assert time.monotonic() < deadline
            a.poll(timeout=0.05)
            b.poll(timeout=0.05)
        assert len(revoked) == 1 and len(revoked[0]) == 1
        assert revoked[0].isdisjoint(a.assignment())
        a.close()
        b.close()


def test_expire_session_hands_partitions_to_others() -> None:
    with Client("memory://") as client:
        client.create_topic("t")
        a = client.consumer("t", group="g", auto_commit=False, group_config=FAST)
        a.poll(timeout=0)
        b = client.consumer("t", group="g", auto_commit=False, group_config=FAST)
        a.expire_session()
        deadline = time.monotonic() + 10
        while not b.assignment():
            assert time.monotonic() < deadline
            b.poll(timeout=0.05)
        a.close()
        b.close()
