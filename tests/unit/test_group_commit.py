"""The writer's group commit: concurrent requests share transactions, and
merged publishes keep every caller's own ids and idempotency."""

from __future__ import annotations

import threading
from pathlib import Path

from tidings import Client
from tidings.engines.sql import database


def test_concurrent_publishes_share_commits_and_keep_their_ids(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """8 threads × 50 publishes: fewer commits than publishes, each id unique
    and each caller's message stored under the id it got back."""
    commits = []
    original = database.Writer._commit_batch

    def counting(self, batch):  # type: ignore[no-untyped-def]
        commits.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(database.Writer, "_commit_batch", counting)
    client = Client(f"sqlite:///{tmp_path / 'gc.db'}")
    client.declare_queue("gc")
    got: dict[int, bytes] = {}
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(50):
            body = b"%d-%d" % (t, i)
            mid = client.publish("gc", body)
            with lock:
                got[mid] = body

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 400
    assert len(commits) < 400 and max(commits) > 1
    stored = {d.id: d.body for d in client.get("gc", 1000)}
    assert stored == got
    client.close()


def test_same_idempotency_key_twice_in_one_call_is_stored_once() -> None:
    """Q3 inside one batch: the second message with a key gets the first's id."""
    client = Client("memory://")
    client.declare_queue("dup")
    from tidings.ports.queue import OutgoingMessage

    ids = client.engine.queues.publish(
        "dup", [OutgoingMessage(b"a", {}, "k"), OutgoingMessage(b"b", {}, "k")]
    )
    assert ids[0] == ids[1]
    assert [d.body for d in client.get("dup", 10)] == [b"a"]
    client.close()
