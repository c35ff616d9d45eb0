"""Two runners share a topic's partitions; one joins, then one leaves, while
records flow: nothing is lost and each partition stays in order (R1, R4)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

from tidings import Client, GroupConfig
from tidings.runtime import App, HandlerContext
from tidings.runtime.runner import Runner

SESSION = GroupConfig(session_timeout_s=2.0, heartbeat_interval_s=0.1)
TOTAL = 3000


def make_app(name: str, seen: dict[int, list[tuple[str, int]]], lock: threading.Lock) -> App:
    app = App("shared")

    @app.handler(topic="flow", group="flow-workers", group_config=SESSION, concurrency=2, name="h")
    def handle(payload: bytes, ctx: HandlerContext) -> None:
        with lock:
            seen[ctx.message.partition].append((name, ctx.message.offset))

    return app


def test_join_and_graceful_leave_lose_nothing_and_keep_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    seen: dict[int, list[tuple[str, int]]] = defaultdict(list)
    lock = threading.Lock()
    with Client(url) as client:
        client.create_topic("flow", partitions=4)
        a = Runner(make_app("a", seen, lock), url).start()
        with client.producer() as producer:
            for i in range(TOTAL):
                producer.send("flow", b"r%d" % i, key=str(i))
                if i == TOTAL // 3:
                    producer.flush()
                    b = Runner(make_app("b", seen, lock), url).start()
                if i == 2 * TOTAL // 3:
                    producer.flush()
                    a.stop()  # graceful: finish, commit, leave
        deadline = time.monotonic() + 60
        while len({(p, o) for p, v in seen.items() for _, o in v}) < TOTAL:
            assert time.monotonic() < deadline, sum(map(len, seen.values()))
            time.sleep(0.05)
        b.stop()
        ends = {i.partition: i.next_offset for i in client.partitions("flow")}
        assert client.engine.groups.committed("flow-workers") == {
            tp: ends[tp.partition] for tp in client.engine.groups.committed("flow-workers")
        }
    members = {m for v in seen.values() for m, _ in v}
    assert members == {"a", "b"}
    for partition, handled in seen.items():
        offsets = [o for _, o in handled]
        assert sorted(set(offsets)) == list(range(ends[partition]))  # none lost
        for member in ("a", "b"):  # in order within each member's share
            mine = [o for m, o in handled if m == member]
            assert mine == sorted(mine)
        # a graceful handoff commits first: the new owner starts where the old one stopped
        assert len(offsets) == len(set(offsets))
