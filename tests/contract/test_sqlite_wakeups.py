"""SQLite cross-process wake-ups are exact and targeted: a waiter registered
a moment ago is woken, any number of channels wake, and a commit wakes only
the waiters of the channels it touched."""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from tidings import Client
from tidings.engines.sql.notify import Notifier, SocketWaiter


def _readable(waiter: SocketWaiter, timeout: float) -> bool:
    return bool(select.select([waiter.fileno()], [], [], timeout)[0])


def _registrations(directory: str) -> list[str]:
    if not os.path.exists(directory):  # removed by the last engine to close
        return []
    return [name for folder in os.scandir(directory) for name in os.listdir(folder.path)]


def test_waiter_registered_just_now_is_woken_on_a_coarse_clock(tmp_path: Path) -> None:
    """A registration made in the same mtime tick as the last commit's look
    at the directory (coarse-timestamp filesystems: up to a second) is found."""
    notifier = Notifier(str(tmp_path / "w.db"))
    notifier.notify(["log:a"])
    before = os.stat(notifier.directory)
    waiter = SocketWaiter(notifier.directory, ["log:a"])
    waiter.arm()
    os.utime(notifier.directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    notifier.notify(["log:a"])
    assert waiter.wait(0.5)
    waiter.close()
    notifier.close()


def test_fresh_waiters_are_woken_by_the_next_commit(tmp_path: Path) -> None:
    """Through the engine: every new waiter is woken by the append that follows it."""
    with Client(f"sqlite:///{tmp_path}/fresh.db") as client:
        client.create_topic("fresh")
        producer = client.producer()
        for _ in range(50):
            waiter = client.engine.waiter(["log:fresh"])
            waiter.arm()
            producer.send_batch("fresh", [b"x"])
            assert waiter.wait(0.5)
            waiter.close()


def test_channels_beyond_4kb_of_names_still_wake(tmp_path: Path) -> None:
    """An append feeding 80 queues with long names (> 4 KB of channel names)
    wakes the waiter of the last of them."""
    with Client(f"sqlite:///{tmp_path}/many.db") as client:
        client.create_topic("many")
        names = [f"q{i:03d}-" + "n" * 60 for i in range(80)]
        for name in names:
            client.declare_queue(name)
            client.bind_topic("many", name)
        assert sum(len("queue:" + n) + 1 for n in names) > 4096
        waiter = client.engine.waiter(["queue:" + names[-1]])
        waiter.arm()
        client.producer().send_batch("many", [b"x"])
        assert waiter.wait(1.0)
        waiter.close()


def test_waiter_on_one_topic_is_not_woken_by_another(tmp_path: Path) -> None:
    """Commits to topic B send nothing to a waiter of topic A (no CPU spent
    by idle waiters of other topics); a commit to A does."""
    with Client(f"sqlite:///{tmp_path}/ab.db") as client:
        client.create_topic("wake-a")
        client.create_topic("wake-b")
        waiter = client.engine.waiter(["log:wake-a"])
        waiter.arm()
        producer = client.producer()
        for _ in range(20):
            producer.send_batch("wake-b", [b"x"])
        assert not _readable(waiter, 0.2)
        producer.send_batch("wake-a", [b"x"])
        assert _readable(waiter, 1.0)
        waiter.close()


def test_waiter_of_several_channels_is_woken_once_per_commit(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "two.db"))
    waiter = SocketWaiter(notifier.directory, ["log:a", "log:b"])
    notifier.notify(["log:a", "log:b", "log:c"])
    assert waiter.wait(0.5)
    assert not _readable(waiter, 0.05)
    notifier.notify(["log:b"])
    assert waiter.wait(0.5)
    waiter.close()
    assert _registrations(notifier.directory) == []
    notifier.close()  # the last engine to close removes the directory
    assert not os.path.exists(notifier.directory)


def test_registrations_of_dead_waiters_are_removed_by_the_next_commit(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "dead.db"))
    waiter = SocketWaiter(notifier.directory, ["log:gone"])
    waiter._sock.close()  # as if its process died: the registration stays
    assert len(_registrations(notifier.directory)) == 1
    notifier.notify(["log:gone"])
    assert _registrations(notifier.directory) == []
    notifier.close()


def test_waiters_registering_and_closing_at_once_all_wake(tmp_path: Path) -> None:
    """Threads register and close waiters on one channel while other
    engines on the file open and close (a closing engine removes the empty
    channel directories): every registration succeeds and every waiter is
    woken by the commit that follows it."""
    notifier = Notifier(str(tmp_path / "race.db"))
    errors: list[BaseException] = []
    missed = 0
    stop = time.monotonic() + 2.0

    def churn() -> None:
        nonlocal missed
        try:
            while time.monotonic() < stop:
                waiter = SocketWaiter(notifier.directory, ["log:a", "log:b"])
                waiter.arm()
                notifier.notify(["log:a"])
                missed += not waiter.wait(1.0)
                waiter.close()
        except BaseException as exc:  # a thread cannot fail the test: the assert below does
            errors.append(exc)

    def open_and_close() -> None:
        while time.monotonic() < stop:
            Notifier(str(tmp_path / "race.db")).close()

    threads = [threading.Thread(target=churn) for _ in range(5)]
    threads.append(threading.Thread(target=open_and_close))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and missed == 0
    assert _registrations(notifier.directory) == []
    notifier.close()
