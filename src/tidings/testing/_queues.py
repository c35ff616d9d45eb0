"""Queue contracts Q1–Q6: leases, dead letters, dedup, FIFO, delays, exchanges."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from ..client.client import Client
from ..errors import (
    AlreadyExists,
    AlreadySettled,
    ConfigurationError,
    LeaseLost,
    QueueFull,
    QueueNotFound,
    RecordTooLarge,
    UnsupportedFeature,
)
from ._base import ContractBase
from ._release import ReleaseContract
from ._transactions import TransactionalAckContract


def _until(condition: object, patience: float = 5.0) -> None:
    deadline = time.monotonic() + patience
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {patience}s")
        time.sleep(0.02)


class QueueContract(ReleaseContract, TransactionalAckContract, ContractBase):
    """Subclass it and provide ``engine_url``."""

    # ---- Q1 ---------------------------------------------------------------
    def test_each_message_is_leased_to_one_consumer(self, client: Client, topic: str) -> None:
        """Q1: a leased message is invisible to other consumers until settled."""
        client.declare_queue(topic)
        client.publish_batch(topic, [b"a", b"b"])
        first = client.get(topic, 1)
        second = client.get(topic, 5)
        assert [d.body for d in first] == [b"a"] and [d.body for d in second] == [b"b"]
        assert client.get(topic, 5) == []
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased) == (0, 2)

    def test_expired_lease_redelivers_with_count(self, client: Client, topic: str) -> None:
        """Q1: after the lease, the message comes back with redelivered=True and
        delivery_count 2; the stale receipt can no longer settle it."""
        client.declare_queue(topic, lease="0.3s")
        client.publish(topic, b"job")
        (first,) = client.get(topic)
        assert (first.delivery_count, first.redelivered) == (1, False)
        (again,) = client.get(topic, wait=3)
        assert again.id == first.id and (again.delivery_count, again.redelivered) == (2, True)
        with pytest.raises(LeaseLost):
            client.ack(first)
        client.ack(again)
        with pytest.raises(AlreadySettled):
            client.ack(again)
        assert client.queue_stats(topic).ready == 0

    def test_nack_with_delay_and_extend_lease(self, client: Client, topic: str) -> None:
        """Q1: nack(delay) hides the message until due; extend_lease keeps it."""
        self.need(client, "nack_delay")
        self.need(client, "lease_extension")
        client.declare_queue(topic, lease="0.5s")
        client.publish(topic, b"x")
        (d,) = client.get(topic)
        client.nack(d, delay="0.3s")
        assert client.get(topic) == [] and client.queue_stats(topic).delayed == 1
        (d,) = client.get(topic, wait=3)
        d = client.extend_lease(d, "5s")
        time.sleep(0.6)
        assert client.get(topic) == []  # still leased thanks to the extension
        client.ack(d)

    def test_competing_consumers_ack_each_message_once(self, client: Client, topic: str) -> None:
        """Q1: four competing consumer threads; every message acked exactly once."""
        client.declare_queue(topic)
        client.publish_batch(topic, [b"%d" % i for i in range(400)])
        acked: Counter[bytes] = Counter()
        lock = threading.Lock()

        def work() -> None:
            while True:
                got = client.get(topic, 7)
                if not got:
                    return
                client.ack(got)
                with lock:
                    acked.update(d.body for d in got)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(acked) == 400 and set(acked.values()) == {1}

    def test_auto_ack_settles_on_delivery(self, client: Client, topic: str) -> None:
        """Auto-ack mode: delivered messages are settled at once, never redelivered."""
        client.declare_queue(topic, lease="0.1s")
        client.publish_batch(topic, [b"a", b"b"])
        assert [d.body for d in client.get(topic, 5, auto_ack=True)] == [b"a", b"b"]
        time.sleep(0.2)
        assert client.get(topic, 5) == [] and client.queue_stats(topic).ready == 0

    def test_get_waits_and_wakes_on_publish(self, client: Client, topic: str) -> None:
        """Q1: a waiting get returns soon after a publish, not at its timeout."""
        client.declare_queue(topic)
        threading.Timer(0.2, lambda: client.publish(topic, b"late")).start()
        start = time.monotonic()
        got = client.get(topic, wait=5)
        assert [d.body for d in got] == [b"late"] and time.monotonic() - start < 2.5

    # ---- Q1 for messages published together -------------------------------
    # Engines may store and lease a published batch as a unit (the SQL
    # engines do); every message must still be leased, settled and
    # redelivered on its own.
    def test_batch_settled_piece_by_piece(self, client: Client, topic: str) -> None:
        """Q1: parts of one published batch, leased by several gets, acked,
        nacked and rejected one by one; each outcome applies to its message only."""
        self.need(client, "dead_letter_admin")
        client.declare_queue(topic, dead_letter=f"{topic}-dlq")
        bodies = [f"m{i}".encode() for i in range(10)]
        client.publish_batch(topic, bodies, headers={"h": "v"})
        first = client.get(topic, 3)
        rest = client.get(topic, 10)
        assert [d.body for d in first + rest] == bodies
        assert all(d.headers.get("h") == "v" and d.delivery_count == 1 for d in first + rest)
        assert (client.queue_stats(topic).ready, client.queue_stats(topic).leased) == (0, 10)
        client.ack(first[:2])
        client.nack(first[2])
        client.reject(rest[0], reason="bad")
        client.ack(rest[1:6])
        (again,) = client.get(topic, 5)
        assert again.body == b"m2" and (again.delivery_count, again.redelivered) == (2, True)
        with pytest.raises(AlreadySettled):
            client.ack(first[0])
        client.ack([again, *rest[6:]])
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased, stats.dead_lettered) == (0, 0, 1)
        (dead,) = client.dead_letters(topic)
        assert dead.body == b"m3" and dead.headers["x-dead-letter-reason"] == "rejected"

    def test_ack_spanning_two_batches_in_part(self, client: Client, topic: str) -> None:
        """Q1: one get spanning two published batches, acked in two calls
        that each cover one batch only partly; every ack counts once."""
        client.declare_queue(topic)
        client.publish_batch(topic, [b"a%d" % i for i in range(5)])
        client.publish_batch(topic, [b"b%d" % i for i in range(5)])
        got = client.get(topic, 8)
        assert [d.body for d in got] == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b0", b"b1", b"b2"]
        client.ack(got[:6])  # all of the first batch's share, part of the second's
        client.ack(got[6:])
        with pytest.raises(AlreadySettled):
            client.ack(got[0])
        rest = client.get(topic, 5)
        assert [d.body for d in rest] == [b"b3", b"b4"] and rest[0].delivery_count == 1
        client.ack(rest)
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased) == (0, 0)

    def test_batch_lease_expiry_redelivers_each_message(self, client: Client, topic: str) -> None:
        """Q1/Q2: a lease on part of a batch runs out: those messages come back
        (delivery_count 2, stale receipts refused), the others are untouched;
        max_deliveries then dead-letters them one by one."""
        self.need(client, "lease_extension")
        self.need(client, "dead_letter_admin")
        client.declare_queue(topic, lease="0.3s", max_deliveries=2, dead_letter=f"{topic}-d")
        client.publish_batch(topic, [f"m{i}".encode() for i in range(8)])
        held = client.get(topic, 4)
        kept = client.extend_lease(held[0], "30s")
        (*_, late) = held
        rest = client.get(topic, 8)
        assert [d.body for d in rest] == [b"m4", b"m5", b"m6", b"m7"]
        client.ack(rest)
        again = client.get(topic, 8, wait=3)
        for _ in range(3):  # the expiry may be noticed between two claims
            again += client.get(topic, 8, wait=1) if len(again) < 3 else []
        assert [d.body for d in again] == [b"m1", b"m2", b"m3"]
        assert all(d.delivery_count == 2 and d.redelivered for d in again)
        with pytest.raises(LeaseLost):
            client.ack(late)
        client.ack(kept)
        time.sleep(0.4)  # the redeliveries' leases run out: that was the last delivery
        assert client.get(topic, 8, wait=0.5) == []
        assert sorted(d.body for d in client.dead_letters(topic)) == [b"m1", b"m2", b"m3"]
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased, stats.dead_lettered) == (0, 0, 3)

    def test_purge_and_stats_count_batched_messages(self, client: Client, topic: str) -> None:
        """Q1: stats count every message of a batch, leased or not; purge
        removes them all."""
        client.declare_queue(topic)
        client.publish_batch(topic, [b"x"] * 300)
        client.publish(topic, b"single")
        got = client.get(topic, 120)
        assert len(got) == 120 and len({d.id for d in got}) == 120
        stats = client.queue_stats(topic)
        assert (stats.ready, stats.leased) == (181, 120)
        assert client.purge_queue(topic) == 301
        assert client.get(topic, 10) == [] and client.queue_stats(topic).ready == 0

    # ---- Q2 ---------------------------------------------------------------
    def test_max_deliveries_moves_to_dead_letter_with_headers(
        self, client: Client, topic: str
    ) -> None:
        """Q2: after max_deliveries the message goes to the DLQ with original
        queue, reason, last error, delivery count and time."""
        self.need(client, "dead_letter_admin")
        dlq = topic + ".dlq"
        client.declare_queue(topic, max_deliveries=2, dead_letter=dlq)
        client.publish(topic, b"poison", headers={"trace": "t1"})
        for _ in range(2):
            (d,) = client.get(topic)
            client.nack(d)
        assert client.get(topic) == []
        (dead,) = client.dead_letters(topic)
        h = dead.headers
        assert dead.body == b"poison" and h["trace"] == "t1"
        assert (h["x-original-queue"], h["x-dead-letter-reason"]) == (topic, "max_deliveries")
        assert h["x-delivery-count"] == "2" and datetime.fromisoformat(h["x-dead-lettered-at"])
        assert client.queue_stats(topic).dead_lettered == 1

    def test_reject_dead_letters_and_redrive_resets(self, client: Client, topic: str) -> None:
        """Q2: reject → DLQ with the reason; redrive brings it back with counters reset."""
        self.need(client, "dead_letter_admin")
        dlq = topic + ".dlq"
        client.declare_queue(topic, dead_letter=dlq)
        client.publish(topic, b"bad")
        client.reject(client.get(topic), reason="ValueError: nope")
        (dead,) = client.dead_letters(topic)
        assert dead.headers["x-last-error"] == "ValueError: nope"
        assert client.redrive(topic) == 1
        (back,) = client.get(topic)
        assert (back.body, back.delivery_count, back.redelivered) == (b"bad", 1, False)
        assert "x-dead-letter-reason" not in back.headers and client.dead_letters(topic) == []

    def test_dead_letter_loop_is_refused(self, client: Client, topic: str) -> None:
        """Q2: a dead-letter chain that leads back to the queue is a ConfigurationError."""
        a, b = topic + "-a", topic + "-b"
        with pytest.raises(ConfigurationError):
            client.declare_queue(a, dead_letter=a)
        client.declare_queue(b, dead_letter=a)
        with pytest.raises(ConfigurationError, match="loops"):
            client.declare_queue(a, dead_letter=b)

    def test_dead_letters_are_kept_without_a_dead_letter_queue(
        self, client: Client, topic: str
    ) -> None:
        """Q2: a queue declared without a dead-letter queue keeps its dead
        letters in its own ``<name>.dlq`` (created with the first one):
        browsable, redrivable, never dropped."""
        client.declare_queue(topic, max_deliveries=1)
        client.publish_batch(topic, [b"rejected", b"worn out", b"fine"])
        bad, worn, fine = client.get(topic, 3)
        client.reject(bad, reason="ValueError: nope")
        client.nack(worn)
        client.ack(fine)
        dead = client.dead_letters(topic)
        assert [(d.body, d.headers["x-dead-letter-reason"]) for d in dead] == [
            (b"rejected", "rejected"),
            (b"worn out", "max_deliveries"),
        ]
        assert client.queue(topic).dead_letter_queue == topic + ".dlq"
        assert client.queue(topic + ".dlq").dead_letter is None  # plain
        assert client.queue_stats(topic + ".dlq").ready == 2
        assert client.queue_stats(topic).dead_lettered == 2
        assert client.redrive(topic) == 2
        assert sorted(d.body for d in client.get(topic, 5)) == [b"rejected", b"worn out"]

    def test_expired_and_overflowing_messages_are_kept_without_a_dead_letter_queue(
        self, client: Client, topic: str
    ) -> None:
        """Q5: TTL expiry and max_length overflow dead-letter into the
        implicit ``<name>.dlq`` too."""
        client.declare_queue(topic, ttl="0.2s")
        client.publish(topic, b"stale")
        time.sleep(0.3)
        assert client.get(topic) == []
        assert [d.headers["x-dead-letter-reason"] for d in client.dead_letters(topic)] == [
            "expired"
        ]
        full = topic + "-full"
        client.declare_queue(full, max_length=1, overflow="dead-letter")
        client.publish(full, b"old")
        client.publish(full, b"new")
        assert [d.body for d in client.dead_letters(full)] == [b"old"]

    def test_deleted_dead_letter_queue_is_declared_again(self, client: Client, topic: str) -> None:
        """Q2: a dead letter whose configured dead-letter queue was deleted
        re-creates it (plain) instead of being dropped."""
        dlq = topic + "-d"
        client.declare_queue(topic, dead_letter=dlq)
        client.delete_queue(dlq)
        client.publish(topic, b"bad")
        client.reject(client.get(topic), reason="boom")
        (dead,) = client.dead_letters(topic)
        assert (dead.body, dead.queue, dead.headers["x-last-error"]) == (b"bad", dlq, "boom")
        assert client.queue(dlq).dead_letter is None

    def test_longest_queue_name_gets_a_valid_dead_letter_queue(
        self, client: Client, topic: str
    ) -> None:
        """Q2: a queue whose name is at the length limit keeps its dead
        letters in a valid, shortened ``….dlq`` name of its own."""
        name = (topic + "x" * 249)[:249]
        client.declare_queue(name)
        client.publish(name, b"bad")
        client.reject(client.get(name))
        (dead,) = client.dead_letters(name)
        assert dead.body == b"bad" and len(dead.queue) <= 249 and dead.queue.endswith(".dlq")
        assert dead.queue == client.queue(name).dead_letter_queue

    def test_loop_through_an_implicit_dead_letter_queue_is_refused(
        self, client: Client, topic: str
    ) -> None:
        """Q2: ``<name>.dlq`` declared to dead-letter back into ``<name>``
        would loop once ``<name>`` uses it: refused."""
        client.declare_queue(topic + ".dlq", dead_letter=topic)
        with pytest.raises(ConfigurationError, match="loops"):
            client.declare_queue(topic)

    def test_dead_letters_are_browsed_and_moved_in_pages(self, client: Client, topic: str) -> None:
        """Q2: dead letters of two queues sharing a dead-letter queue, more
        than a page of them: each queue sees, redrives and purges only its
        own, in order, all of them."""
        a, b, shared = topic + "-a", topic + "-b", topic + "-dlq"
        client.declare_queue(a, dead_letter=shared)
        client.declare_queue(b, dead_letter=shared)
        for i in range(3):
            client.publish_batch(a, [b"a%d-%d" % (i, n) for n in range(400)])
            client.reject(client.get(a, 400))
            client.publish(b, b"b%d" % i)
            client.reject(client.get(b))
        firsts = client.dead_letters(a, limit=450)
        assert [d.body for d in firsts[:2]] == [b"a0-0", b"a0-1"] and len(firsts) == 450
        assert [d.body for d in client.dead_letters(b)] == [b"b0", b"b1", b"b2"]
        assert len(client.dead_letters(a, limit=5000)) == 1200
        assert client.redrive(a, ids=[d.id for d in firsts]) == 450
        assert client.purge_dead_letters(b) == 3
        assert client.redrive(a) == 750
        assert client.dead_letters(a) == [] and client.dead_letters(b) == []
        assert client.queue_stats(a).ready == 1200 and client.queue_stats(shared).ready == 0

    # ---- Q3 ---------------------------------------------------------------
    def test_duplicate_idempotency_key_returns_original_id(
        self, client: Client, topic: str
    ) -> None:
        """Q3: the same key within the window stores nothing and returns the first id."""
        self.need(client, "dedup")
        client.declare_queue(topic)
        first = client.publish(topic, b"pay 10", idempotency_key="order-1")
        again = client.publish(topic, b"pay 10", idempotency_key="order-1")
        other = client.publish(topic, b"pay 20", idempotency_key="order-2")
        assert first == again != other
        assert [d.body for d in client.get(topic, 10)] == [b"pay 10", b"pay 20"]

    def test_dedup_window_ends(self, client: Client, topic: str) -> None:
        """Q3: after the window, the key is forgotten."""
        self.need(client, "dedup")
        client.declare_queue(topic, dedup_window="0.2s")
        first = client.publish(topic, b"x", idempotency_key="k")
        time.sleep(0.3)
        assert client.publish(topic, b"x", idempotency_key="k") != first

    # ---- Q4 ---------------------------------------------------------------
    def test_fifo_group_blocks_while_earlier_message_unacked(
        self, client: Client, topic: str
    ) -> None:
        """Q4: within a group, nothing is delivered while an earlier message is
        unacked; other groups flow."""
        self.need(client, "fifo_groups")
        client.declare_queue(topic, fifo=True)
        for body, group in [(b"a1", "a"), (b"a2", "a"), (b"b1", "b"), (b"b2", "b")]:
            client.publish(topic, body, group=group)
        batch = client.get(topic, 10)
        assert sorted(d.body for d in batch) == [b"a1", b"b1"]
        assert client.get(topic, 10) == []
        client.ack([d for d in batch if d.group == "a"])
        (nxt,) = client.get(topic, 10)
        assert nxt.body == b"a2"

    # ---- Q5 ---------------------------------------------------------------
    def test_delayed_message_invisible_until_due(self, client: Client, topic: str) -> None:
        """Q5: a delayed message is stored at once but claimable only when due."""
        self.need(client, "delays")
        client.declare_queue(topic)
        client.publish(topic, b"later", delay="0.4s")
        assert client.get(topic) == [] and client.queue_stats(topic).delayed == 1
        (d,) = client.get(topic, wait=3)
        assert d.body == b"later"
        due = datetime.fromtimestamp(time.time() + 0.3, tz=UTC)
        client.publish(topic, b"at", not_before=due)
        assert client.get(topic) == []
        assert [x.body for x in client.get(topic, wait=3)] == [b"at"]

    def test_ttl_expired_message_is_dead_lettered(self, client: Client, topic: str) -> None:
        """Q5: a message not delivered within its TTL goes to the DLQ, reason expired."""
        self.need(client, "dead_letter_admin")
        dlq = topic + ".dlq"
        client.declare_queue(topic, ttl="0.2s", dead_letter=dlq)
        client.publish(topic, b"stale")
        time.sleep(0.3)
        assert client.get(topic) == []
        (dead,) = client.dead_letters(topic)
        assert dead.headers["x-dead-letter-reason"] == "expired"

    # ---- Q6 ---------------------------------------------------------------
    def test_exchanges_copy_to_every_bound_queue(self, client: Client, topic: str) -> None:
        """Q6: fanout, direct and topic exchanges route one publish to each
        matching queue."""
        self.need(client, "exchanges")
        qs = [f"{topic}-{n}" for n in ("eu", "all", "audit")]
        for q in qs:
            client.declare_queue(q)
        client.declare_exchange(topic + "-t", "topic")
        client.bind(topic + "-t", qs[0], "booking.eu.*")
        client.bind(topic + "-t", qs[1], "booking.#")
        assert set(client.publish_to(topic + "-t", b"m", "booking.eu.created")) == {qs[0], qs[1]}
        assert set(client.publish_to(topic + "-t", b"m", "booking.us")) == {qs[1]}
        client.declare_exchange(topic + "-f", "fanout")
        for q in qs:
            client.bind(topic + "-f", q)
        assert set(client.publish_to(topic + "-f", b"all")) == set(qs)
        client.declare_exchange(topic + "-d", "direct")
        client.bind(topic + "-d", qs[2], "refund")
        assert set(client.publish_to(topic + "-d", b"r", "refund")) == {qs[2]}
        assert client.publish_to(topic + "-d", b"r", "other") == {}
        assert client.queue_stats(qs[1]).ready == 3

    def test_exchange_publish_is_atomic(self, client: Client, topic: str) -> None:
        """Q6: if one bound queue refuses the message, no queue gets it."""
        self.need(client, "exchanges")
        ok, full = topic + "-ok", topic + "-full"
        client.declare_queue(ok)
        client.declare_queue(full, max_length=1)
        client.publish(full, b"filler")
        client.declare_exchange(topic, "fanout")
        client.bind(topic, ok)
        client.bind(topic, full)
        with pytest.raises(QueueFull):
            client.publish_to(topic, b"m")
        assert client.queue_stats(ok).ready == 0

    def test_consistent_hash_spreads_and_is_stable(self, client: Client, topic: str) -> None:
        """Q6: a consistent-hash exchange sends each key to one queue, always the same."""
        self.need(client, "exchanges")
        qs = [f"{topic}-{i}" for i in range(3)]
        client.declare_exchange(topic, "consistent-hash")
        for q in qs:
            client.declare_queue(q)
            client.bind(topic, q, weight=1)
        first = {k: list(client.publish_to(topic, b"m", f"user-{k}")) for k in range(60)}
        again = {k: list(client.publish_to(topic, b"m", f"user-{k}")) for k in range(60)}
        assert first == again and all(len(v) == 1 for v in first.values())
        assert len({v[0] for v in first.values()}) == 3

    def test_topic_feeds_bound_queue_in_the_same_transaction(
        self, client: Client, topic: str
    ) -> None:
        """A topic bound to a queue: each appended record is both in the log
        (replayable) and in the queue (work-distributed), with its position."""
        self.need(client, "topic_bindings")
        client.create_topic(topic, partitions=2)
        client.declare_queue(topic)
        client.bind_topic(topic, topic)
        metas = client.producer().send_batch(topic, [b"a", b"b", None], keys=["k1", "k2", "k3"])
        got = {d.body: d.headers for d in client.get(topic, 10)}
        assert set(got) == {b"a", b"b"}  # the tombstone stays in the log only
        for meta, body, key in zip(metas[:2], (b"a", b"b"), ("k1", "k2"), strict=True):
            h = got[body]
            assert (h["x-topic"], h["x-key"]) == (topic, key)
            assert (int(h["x-partition"]), int(h["x-offset"])) == (meta.partition, meta.offset)

    def test_topic_binding_is_refused_where_unsupported(self, client: Client, topic: str) -> None:
        """Features: engines that cannot bind atomically say so."""
        if client.features.supports("topic_bindings"):
            pytest.skip("supported here")
        self.need(client, "logs")
        client.create_topic(topic)
        client.declare_queue(topic)
        with pytest.raises(UnsupportedFeature):
            client.bind_topic(topic, topic)

    # ---- bad input ----------------------------------------------------------
    def test_bad_input_is_typed_and_stores_nothing(self, client: Client, topic: str) -> None:
        """Unknown queue, oversize body, conflicting redeclare: typed errors."""
        with pytest.raises(QueueNotFound):
            client.publish(topic, b"x")
        client.declare_queue(topic)
        client.declare_queue(topic)  # same settings: fine
        with pytest.raises(AlreadyExists):
            client.declare_queue(topic, lease="5s")
        with pytest.raises(RecordTooLarge):
            client.publish_batch(topic, [b"ok", b"x" * (2 << 20)])
        assert client.queue_stats(topic).ready == 0
        with pytest.raises(ConfigurationError):
            client.declare_queue(topic + "-2", lease="soon")

    def test_max_length_overflow_policies(self, client: Client, topic: str) -> None:
        """max_length: reject refuses new messages; dead-letter drops the oldest to the DLQ."""
        self.need(client, "dead_letter_admin")
        client.declare_queue(topic, max_length=2)
        client.publish_batch(topic, [b"1", b"2"])
        with pytest.raises(QueueFull):
            client.publish(topic, b"3")
        oldest = topic + "-old"
        client.declare_queue(
            oldest, max_length=2, overflow="dead-letter", dead_letter=oldest + ".dlq"
        )
        client.publish_batch(oldest, [b"1", b"2", b"3"][:2])
        client.publish(oldest, b"3")
        assert [d.body for d in client.get(oldest, 5)] == [b"2", b"3"]
        assert client.dead_letters(oldest)[0].headers["x-dead-letter-reason"] == "maxlen"
