"""The outbox end to end on real SQLite and PostgreSQL: writers in the
caller's transaction (O1), commit order per shard and no skipped rows (O2),
idempotency keys (O3), failures, leases, cleanup and re-dispatch (O4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from outbox_db import AppDb, app_db, keys_on_shards

from tidings import JSON, Client, EngineUnavailable, SerializationError, TopicNotFound, open_engine
from tidings.errors import ConfigurationError
from tidings.outbox import (
    IDEMPOTENCY_HEADER,
    EmptyRange,
    InvalidRange,
    Outbox,
    OutboxNotFound,
    OutboxSchemaError,
    Relay,
    cleanup,
    migrate,
    redispatch,
    status,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppDb]:
    yield from app_db(request.param, tmp_path)


def _log(client: Client, topic: str) -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, idempotency key) of every record, partition by partition."""
    out = []
    for p in range(client.topic(topic).partitions):
        for r in client.engine.log.read(topic, p, 0, 10_000):
            out.append((r.key, r.value, r.headers[IDEMPOTENCY_HEADER]))
    return out


def _drain(db: AppDb, client: Client, outbox: str = "default") -> int:
    with Relay(db.url, client, outbox=outbox) as relay:
        return relay.run(until_idle=True)


def _setup(db: AppDb, topic: str, shards: int = 1, partitions: int = 1) -> Client:
    migrate(db.url, {"default": shards})
    client = Client(db.engine_url)
    client.create_topic(topic, partitions)
    return client


def test_rollback_leaves_no_event_and_commit_always_yields_it(db: AppDb) -> None:
    """O1: rolled back → nothing to relay; committed → relayed, with its key."""
    client = _setup(db, "ob-tx")
    conn = db.connect()
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-tx", b"lost", key="k")
    conn.execute("ROLLBACK")
    assert status(db.url)[0].pending == 0
    assert _drain(db, client) == 0
    conn.execute(db.begin)
    event_id = Outbox().add(conn, "topic:ob-tx", b"kept", key="k")
    assert status(db.url)[0].pending == 0  # not visible before commit
    conn.execute("COMMIT")
    assert _drain(db, client) == 1
    [(key, value, idem)] = _log(client, "ob-tx")
    assert (key, value) == (b"k", b"kept")
    assert idem.endswith(f":default:{event_id}")
    conn.close()
    client.close()


def test_codec_failure_writes_nothing_and_leaves_the_transaction_usable(db: AppDb) -> None:
    """Bad input is refused before any SQL: the caller's transaction goes on."""
    client = _setup(db, "ob-codec")
    conn = db.connect()
    conn.execute(db.begin)
    with pytest.raises(SerializationError):
        Outbox(codec=JSON).add(conn, "topic:ob-codec", {"bad": {1, 2}})
    with pytest.raises(ConfigurationError, match="topic:NAME"):
        Outbox().add(conn, "bookings", b"x")
    with pytest.raises(ConfigurationError, match="needs a body"):
        Outbox().add(conn, "queue:q", None)
    Outbox(codec=JSON).add(conn, "topic:ob-codec", {"ok": 1})
    conn.execute("COMMIT")
    assert _drain(db, client) == 1
    assert [v for _, v, _ in _log(client, "ob-codec")] == [b'{"ok":1}']
    conn.close()
    client.close()


def test_missing_schema_undeclared_outbox_and_autocommit_are_typed_errors(db: AppDb) -> None:
    conn = db.connect()
    conn.execute(db.begin)
    with pytest.raises(OutboxSchemaError, match="tidings outbox migrate"):
        Outbox().add(conn, "topic:t", b"x")
    conn.execute("ROLLBACK")
    with pytest.raises(OutboxSchemaError, match="migrate"):
        Relay(db.url, "memory://")  # a relay pointed at a database with no outbox
    migrate(db.url)
    conn.execute(db.begin)
    with pytest.raises(OutboxNotFound, match="--outbox billing"):
        Outbox("billing").add(conn, "topic:t", b"x")
    conn.execute("ROLLBACK")
    with pytest.raises(ConfigurationError, match="no open transaction"):
        Outbox().add(conn, "topic:t", b"x")  # autocommit: the event would commit alone
    with pytest.raises(ConfigurationError, match="already has 1 shards"):
        migrate(db.url, {"default": 4})
    conn.execute("UPDATE tidings_outbox_meta SET value = '0' WHERE key = 'schema_version'")
    conn.execute(db.begin)
    with pytest.raises(OutboxSchemaError, match="version 0"):
        Outbox().add(conn, "topic:t", b"x")
    conn.execute("ROLLBACK")
    conn.close()


def test_same_shard_writers_commit_in_order_behind_an_open_unrelated_transaction(
    db: AppDb,
) -> None:
    """O2 on one shard: a second writer of the shard waits for the first to
    commit (SQLite: one writer; PostgreSQL: the shard's advisory lock), so
    ids are commit order; an unrelated open transaction delays nothing."""
    client = _setup(db, "ob-order")
    unrelated = db.connect()
    unrelated.execute("CREATE TABLE IF NOT EXISTS other (x INTEGER)")
    unrelated.execute("BEGIN")
    unrelated.execute("SELECT count(*) FROM other")  # stays open throughout
    first, second = db.connect(), db.connect()
    first.execute(db.begin)
    Outbox().add(first, "topic:ob-order", b"t1", key="k")
    done = threading.Event()

    def write_second() -> None:
        second.execute(db.begin)
        Outbox().add(second, "topic:ob-order", b"t2", key="k")
        second.execute("COMMIT")
        done.set()

    worker = threading.Thread(target=write_second)
    worker.start()
    assert not done.wait(0.5), "the second writer of the shard must wait for the first"
    first.execute("COMMIT")
    worker.join(10)
    assert done.is_set()
    assert _drain(db, client) == 2
    assert [v for _, v, _ in _log(client, "ob-order")] == [b"t1", b"t2"]
    unrelated.execute("ROLLBACK")
    for c in (first, second, unrelated):
        c.close()
    client.close()


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[AppDb]:
    yield from app_db("postgresql", tmp_path)


def test_out_of_order_commits_on_two_shards_are_never_skipped(pg_db: AppDb) -> None:
    """The classic trap: id 1 inserted first, committed last. With per-shard
    progress marks the late commit is still relayed; an open third
    transaction holding an unrelated write does not hold anything up.
    (PostgreSQL only: on SQLite a second insert waits for the first commit.)"""
    db = pg_db
    client = _setup(db, "ob-skip", shards=2)
    key_a, key_b = keys_on_shards(2, 2)
    setup = db.connect()
    setup.execute("CREATE TABLE other (x INTEGER)")
    setup.execute("INSERT INTO other VALUES (1)")
    unrelated, early, late = db.connect(), db.connect(), db.connect()
    unrelated.execute("BEGIN")
    unrelated.execute("UPDATE other SET x = 2")  # open for the whole test
    early.execute("BEGIN")
    id_a = Outbox().add(early, "topic:ob-skip", b"a1", key=key_a)
    late.execute("BEGIN")
    id_b = Outbox().add(late, "topic:ob-skip", b"b1", key=key_b)
    late.execute("COMMIT")
    assert id_a < id_b
    stop = threading.Event()
    relay = Relay(db.url, client)
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        _wait_for(lambda: len(_log(client, "ob-skip")) == 1, 2.0)  # b1 is not held up by a1
        time.sleep(2.0)  # the unrelated transaction and a1 stay open a while
        early.execute("COMMIT")
        committed = time.monotonic()
        _wait_for(lambda: len(_log(client, "ob-skip")) == 2)  # the lower id is not skipped
        assert time.monotonic() - committed < 1.0  # woken by NOTIFY, not a poll interval
    finally:
        stop.set()
        runner.join(10)
        relay.close()
    assert [v for _, v, _ in _log(client, "ob-skip")] == [b"b1", b"a1"]
    unrelated.execute("ROLLBACK")
    for c in (setup, unrelated, early, late):
        c.close()
    client.close()


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failing_destination_stops_the_shard_at_its_first_failure(db: AppDb) -> None:
    """Events for a topic that does not exist yet stop the shard there; the
    prefix before them is acknowledged, nothing after them overtakes them,
    and once the topic exists the relay resumes in order."""
    client = _setup(db, "ob-ok")
    conn = db.connect()
    conn.execute(db.begin)
    for i, dest in enumerate(["ob-ok", "ob-ok", "ob-later", "ob-ok"]):
        Outbox().add(conn, f"topic:{dest}", f"e{i}".encode(), key="k")
    conn.execute("COMMIT")
    relay = Relay(db.url, client, backoff_base_s=0.01, backoff_max_s=0.05)
    with pytest.raises(TopicNotFound):
        relay.run(until_idle=True)
    assert [v for _, v, _ in _log(client, "ob-ok")] == [b"e0", b"e1"]  # e3 waits behind e2
    [shard] = status(db.url)
    assert shard.pending == 2 and shard.failed >= 1
    assert "TopicNotFound" in (shard.last_error or "")
    client.create_topic("ob-later")
    time.sleep(0.06)
    assert relay.run(until_idle=True) == 2
    relay.close()
    assert [v for _, v, _ in _log(client, "ob-ok")] == [b"e0", b"e1", b"e3"]
    assert [v for _, v, _ in _log(client, "ob-later")] == [b"e2"]
    assert status(db.url)[0].pending == 0
    conn.close()
    client.close()


def test_queue_events_are_published_through_the_client(
    db: AppDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay publishes with Client.publish_batch (per-message headers,
    idempotency keys and FIFO groups), not the engine port behind it."""
    migrate(db.url)
    client = Client(db.engine_url)
    client.declare_queue("ob-pub", fifo=True)
    calls: list[dict[str, Any]] = []
    publish_batch = client.publish_batch

    def spy(queue: str, bodies: Any, **options: Any) -> list[int]:
        calls.append({"queue": queue, "bodies": list(bodies), **options})
        return publish_batch(queue, bodies, **options)

    monkeypatch.setattr(client, "publish_batch", spy)
    conn = db.connect()
    conn.execute(db.begin)
    ids = [
        Outbox().add(conn, "queue:ob-pub", b"m0", key="g", headers={"h": "0"}),
        Outbox().add(conn, "queue:ob-pub", b"m1", key="other"),
    ]
    conn.execute("COMMIT")
    assert _drain(db, client) == 2
    [call] = calls
    keys = call["idempotency_keys"]
    assert [k.rsplit(":", 1)[1] for k in keys] == [str(i) for i in ids]
    assert call["headers"] == [
        {"h": "0", IDEMPOTENCY_HEADER: keys[0]},
        {IDEMPOTENCY_HEADER: keys[1]},
    ]
    assert (call["bodies"], call["groups"]) == ([b"m0", b"m1"], ["g", "other"])
    got = client.get("ob-pub", 10)
    assert [(d.body, d.group, dict(d.headers)) for d in got] == [
        (b"m0", "g", call["headers"][0]),
        (b"m1", "other", call["headers"][1]),
    ]
    conn.close()
    client.close()


def test_queue_destinations_dedup_on_the_idempotency_key(db: AppDb) -> None:
    """O3: a re-dispatched event keeps its idempotency key, so the queue
    stores nothing new while its dedup window remembers the key."""
    migrate(db.url)
    client = Client(db.engine_url)
    client.declare_queue("ob-q", fifo=True)
    conn = db.connect()
    conn.execute(db.begin)
    ids = [Outbox().add(conn, "queue:ob-q", f"m{i}", key="g") for i in range(3)]
    conn.execute("COMMIT")
    assert _drain(db, client) == 3
    assert redispatch(db.url, from_id=ids[0], to_id=ids[-1]) == 3
    assert _drain(db, client) == 3
    got = client.get("ob-q", 10)
    assert [d.body for d in got] == [b"m0"]  # FIFO group = the event's key
    assert client.queue_stats("ob-q").ready + client.queue_stats("ob-q").leased == 3
    conn.close()
    client.close()


def test_cleanup_and_redispatch_keep_pending_events_and_original_keys(db: AppDb) -> None:
    """O4: cleanup removes only forwarded events past the retention, in
    pages; re-dispatch re-sends a range with the original idempotency keys;
    an empty or inverted range is a typed error."""
    client = _setup(db, "ob-dr")
    conn = db.connect()
    conn.execute(db.begin)
    ids = [Outbox().add(conn, "topic:ob-dr", f"v{i}".encode(), key="k") for i in range(5)]
    conn.execute("COMMIT")
    assert _drain(db, client) == 5
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-dr", b"pending", key="k")
    conn.execute("COMMIT")
    assert redispatch(db.url, from_id=ids[1], to_id=ids[2]) == 2
    with pytest.raises(InvalidRange):
        redispatch(db.url, from_id=ids[2], to_id=ids[1])
    with pytest.raises(EmptyRange):
        redispatch(db.url, from_id=ids[-1] + 1000, to_id=ids[-1] + 2000)
    assert _drain(db, client) == 3
    records = _log(client, "ob-dr")
    assert [v for _, v, _ in records] == [
        b"v0",
        b"v1",
        b"v2",
        b"v3",
        b"v4",
        b"pending",
        b"v1",
        b"v2",
    ]
    assert records[6][2] == records[1][2] and records[7][2] == records[2][2]
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-dr", b"unsent", key="k")
    conn.execute("COMMIT")
    assert cleanup(db.url, 0, page=3) == 8  # all forwarded rows, the pending one stays
    assert status(db.url)[0].pending == 1
    with pytest.raises(EmptyRange):
        redispatch(db.url, from_id=ids[0], to_id=ids[-1])  # cleaned up
    conn.close()
    client.close()


def test_two_relays_racing_for_one_shard_forward_each_event_once(db: AppDb) -> None:
    """At most one relay holds a shard: two relays started together forward
    every event exactly once between them."""
    client = _setup(db, "ob-race")
    conn = db.connect()
    conn.execute(db.begin)
    for i in range(500):
        Outbox().add(conn, "topic:ob-race", f"{i}".encode(), key=f"k{i % 7}")
    conn.execute("COMMIT")
    relays = [Relay(db.url, db.engine_url, batch_size=50) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in relays]
    for t in threads:
        t.start()
    _wait_for(lambda: status(db.url)[0].pending == 0)
    holders = [r.held() for r in relays]
    stop.set()
    for t in threads:
        t.join(10)
    counts = sorted(r.forwarded for r in relays)
    for r in relays:
        r.close()
    assert counts == [0, 500] and sorted(holders) == [[], [0]]
    values = [v for _, v, _ in _log(client, "ob-race")]
    assert sorted(values, key=int) == [str(i).encode() for i in range(500)]
    conn.close()
    client.close()


def test_status_shows_pending_lag_and_the_relay_holding_each_shard(db: AppDb) -> None:
    client = _setup(db, "ob-status", shards=2)
    key_a, _ = keys_on_shards(2, 2)
    conn = db.connect()
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-status", b"x", key=key_a)
    conn.execute("COMMIT")
    time.sleep(0.05)
    before = status(db.url)
    assert [(s.shard, s.pending) for s in before] == [(0, 1), (1, 0)]
    assert before[0].lag_s >= 0.04 and before[1].lag_s == 0
    relay = Relay(db.url, client, outbox="default", owner="relay-a")
    relay.run_once()
    after = status(db.url)
    assert [(s.pending, s.forwarded, s.owner) for s in after] == [
        (0, 1, "relay-a"),
        (0, 0, "relay-a"),
    ]
    relay.close()
    assert [s.owner for s in status(db.url)] == [None, None]  # released on close
    conn.close()
    client.close()


class _FlakyLog:
    """A destination log that is down (EngineUnavailable) until told not to be."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down, self.attempts = inner, True, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        if self.down:
            raise EngineUnavailable("destination down (test)")
        return self.inner.append(*args, **kwargs)


class _FlakyEngine:
    def __init__(self, url: str) -> None:
        self.inner = open_engine(url)
        self.log = _FlakyLog(self.inner.log)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_destination_down_pauses_with_backoff_then_resumes_in_order(db: AppDb) -> None:
    """While the engine is unavailable the shard backs off (attempts grow
    slower than polls) and nothing is marked; once it is back every event
    arrives once, in order."""
    migrate(db.url)
    engine = _FlakyEngine("memory://")
    client = Client(engine=engine)  # type: ignore[arg-type]
    client.create_topic("ob-down")
    conn = db.connect()
    conn.execute(db.begin)
    for i in range(20):
        Outbox().add(conn, "topic:ob-down", f"{i}".encode(), key=f"k{i % 3}")
    conn.execute("COMMIT")
    relay = Relay(db.url, client, batch_size=7, backoff_base_s=0.02, backoff_max_s=0.2)
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        time.sleep(0.8)
        attempts = engine.log.attempts
        assert 2 <= attempts <= 12, attempts  # backed off: ~0.02+0.04+0.08+0.16+0.2…
        shard = status(db.url)[0]
        # Read a moment after the attempts: one more may have failed between.
        assert shard.pending == 20 and attempts <= shard.failed <= attempts + 1
        assert "EngineUnavailable" in (shard.last_error or "")
        engine.log.down = False
        _wait_for(lambda: status(db.url)[0].pending == 0)
    finally:
        stop.set()
        runner.join(10)
        relay.close()
    values = [r.value for r in client.engine.log.read("ob-down", 0, 0, 100)]
    assert values == [f"{i}".encode() for i in range(20)]
    conn.close()
    client.close()


def test_an_events_shard_is_the_producers_partition_of_its_key(db: AppDb) -> None:
    """Shards use the producer's stable hash: crc32_partition(key, shards)."""
    from tidings.partitioner import crc32_partition

    migrate(db.url, {"sharded": 5})
    conn = db.connect()
    conn.execute(db.begin)
    keys = [f"booking-{i}" for i in range(40)]
    ids = [Outbox("sharded").add(conn, "topic:t", b"x", key=k) for k in keys]
    conn.execute("COMMIT")
    rows = dict(conn.execute("SELECT id, shard FROM tidings_outbox").fetchall())
    assert [rows[i] for i in ids] == [crc32_partition(k.encode(), 5) for k in keys]
    conn.close()


def test_a_relay_backing_off_keeps_its_lease(db: AppDb) -> None:
    """During a destination outage longer than the lease the relay renews
    its lease while it backs off: no standby could take the shard over."""
    migrate(db.url)
    engine = _FlakyEngine("memory://")
    client = Client(engine=engine)  # type: ignore[arg-type]
    client.create_topic("ob-keep")
    conn = db.connect()
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-keep", b"x")
    conn.execute("COMMIT")
    relay = Relay(
        db.url, client, owner="keeper", lease_s=0.4, backoff_base_s=1.0, backoff_max_s=2.0
    )
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        owners = []
        for _ in range(25):  # 2.5 s of outage, lease 0.4 s, retries 1-2 s apart
            time.sleep(0.1)
            owners.append(status(db.url)[0].owner)
        assert set(owners) == {"keeper"}, owners
        engine.log.down = False
        _wait_for(lambda: status(db.url)[0].pending == 0)
    finally:
        stop.set()
        runner.join(10)
        relay.close()
    conn.close()
    client.close()


def test_an_outbox_without_notify_sends_none_and_is_still_relayed(pg_db: AppDb) -> None:
    """PostgreSQL: notify=False spares writers the NOTIFY (a notifying commit
    takes a database-wide lock); the relay polls and still forwards."""
    import psycopg

    db = pg_db
    migrate(db.url, {"loud": 1})
    migrate(db.url, {"quiet": 1}, notify=False)
    client = Client(db.engine_url)
    client.create_topic("ob-quiet")
    listener = psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True)
    listener.execute("LISTEN tidings_outbox")
    conn = db.connect()
    heard = []
    for name in ("quiet", "loud"):
        conn.execute("BEGIN")
        Outbox(name).add(conn, "topic:ob-quiet", name.encode())
        conn.execute("COMMIT")
        heard.append([n.payload for n in listener.notifies(timeout=0.5)])
    listener.close()
    # The channel is database-wide: other tests' outboxes may be heard too.
    assert "quiet" not in heard[0] + heard[1] and "loud" in heard[1]
    relay = Relay(db.url, client, outbox="quiet", pg_poll_s=0.01)
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        _wait_for(lambda: status(db.url, "quiet")[0].pending == 0, 5.0)
        conn.execute("BEGIN")
        Outbox("quiet").add(conn, "topic:ob-quiet", b"later")
        conn.execute("COMMIT")
        committed = time.monotonic()
        _wait_for(lambda: status(db.url, "quiet")[0].pending == 0, 5.0)
        assert time.monotonic() - committed < 1.0
    finally:
        stop.set()
        runner.join(10)
        relay.close()
        conn.close()
    assert [v for _, v, _ in _log(client, "ob-quiet")] == [b"quiet", b"later"]
    client.close()


def test_cleanup_keeps_forwarded_events_younger_than_the_retention(db: AppDb) -> None:
    client = _setup(db, "ob-keep-young")
    conn = db.connect()
    conn.execute(db.begin)
    for i in range(5):
        Outbox().add(conn, "topic:ob-keep-young", f"{i}".encode())
    conn.execute("COMMIT")
    assert _drain(db, client) == 5
    assert cleanup(db.url, "1h") == 0
    time.sleep(0.3)
    conn.execute(db.begin)
    Outbox().add(conn, "topic:ob-keep-young", b"young")
    conn.execute("COMMIT")
    assert _drain(db, client) == 1
    assert cleanup(db.url, "200ms", page=2) == 5  # the old five, in pages of 2; not the young one
    assert conn.execute("SELECT count(*) FROM tidings_outbox").fetchone()[0] == 1
    conn.close()
    client.close()


def test_the_relay_survives_its_postgresql_connections_being_killed(pg_db: AppDb) -> None:
    """A database restart or failover drops the relay's connections (reads
    and LISTEN): it backs off, reconnects, and goes on in order."""
    import psycopg

    db = pg_db
    client = _setup(db, "ob-reconnect")
    conn = db.connect()
    relay = Relay(db.url, client, backoff_base_s=0.01, backoff_max_s=0.1)
    stop = threading.Event()
    runner = threading.Thread(target=relay.run, args=(stop,))
    runner.start()
    try:
        for i in range(3):
            conn.execute("BEGIN")
            Outbox().add(conn, "topic:ob-reconnect", f"{i}".encode(), key="k")
            conn.execute("COMMIT")
            _wait_for(lambda i=i: len(_log(client, "ob-reconnect")) == i + 1)  # type: ignore[misc]
            with psycopg.connect("postgresql://127.0.0.1:5432/test", autocommit=True) as admin:
                ours = [relay.db.conn.info.backend_pid, relay.db._listen().info.backend_pid]  # type: ignore[attr-defined]
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid = ANY(%s)",
                    (ours,),
                ).fetchone()
                assert killed == (2,)  # the relay's reading and listening connections
        assert runner.is_alive()
    finally:
        stop.set()
        runner.join(10)
        relay.close()
    assert [v for _, v, _ in _log(client, "ob-reconnect")] == [b"0", b"1", b"2"]
    conn.close()
    client.close()
