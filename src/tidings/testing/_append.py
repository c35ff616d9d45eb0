"""Appends: acks, dense offsets (L2), key placement (L3), record shapes, bad input."""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from ..client.client import Client
from ..codecs import JSON
from ..errors import RecordTooLarge, SerializationError
from ..message import RecordMetadata
from ..partitioner import PARTITIONERS
from ._base import ContractBase, check_acked, offsets, read_all

_THREADS = 8
_PER_THREAD = 60


class AppendContract(ContractBase):
    def test_ack_means_stored(self, client: Client, topic: str) -> None:
        """L1/L2: once an ack resolves, the record is readable at the acked
        offset, with the acked timestamp."""
        client.create_topic(topic)
        with client.producer(linger_s=0.005) as producer:
            acks = [producer.send(topic, f"v{i}".encode()) for i in range(5)]
            metas = [a.result(timeout=10) for a in acks]
        stored = read_all(client, topic, 0)
        assert offsets(stored) == [0, 1, 2, 3, 4]
        check_acked(client, [m.offset for m in metas], offsets(stored))
        assert [r.value for r in stored] == [f"v{i}".encode() for i in range(5)]
        assert [r.timestamp for r in stored] == [m.timestamp for m in metas]

    def test_offsets_dense_and_increasing(self, client: Client, topic: str) -> None:
        """L2: offsets in each partition start at 0 and increase by one across
        single sends and batches."""
        client.create_topic(topic, partitions=2)
        producer = client.producer()
        producer.send_batch(topic, [b"a", b"b", b"c"], partition=0)
        client.produce(topic, b"d", partition=0)
        producer.send_batch(topic, [b"e"] * 4, partition=1)
        producer.send_batch(topic, [b"f", b"g"], partition=0)
        assert offsets(read_all(client, topic, 0)) == list(range(6))
        assert offsets(read_all(client, topic, 1)) == list(range(4))
        assert [i.next_offset for i in client.partitions(topic)] == [6, 4]
        assert offsets(client.engine.log.read(topic, 0, 2, 2))[:2] == [2, 3]

    def test_concurrent_producers_keep_offsets_dense(self, client: Client, topic: str) -> None:
        """L2: with several producer threads appending at once, each partition's
        offsets are dense, every ack names a distinct offset, and each acked
        offset holds the record that was acked."""
        client.create_topic(topic, partitions=2)
        acked: list[tuple[bytes, RecordMetadata]] = []
        lock = threading.Lock()
        errors: list[BaseException] = []
        shared = client.producer()

        def work(t: int) -> None:
            try:
                values = [f"t{t}-{i}".encode() for i in range(_PER_THREAD)]
                keys = [f"k{i % 7}" for i in range(_PER_THREAD)]
                if t % 2:
                    metas = list(shared.send_batch(topic, values[:30], keys[:30]))
                    metas += [
                        shared.send(topic, v, k).result(10) for v, k in zip(values[30:], keys[30:])
                    ]
                else:
                    metas = [shared.send(topic, v, k).result(10) for v, k in zip(values, keys)]
                with lock:
                    acked.extend(zip(values, metas))
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(_THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        shared.close()
        assert not errors
        assert len(acked) == _THREADS * _PER_THREAD
        stored = {p: read_all(client, topic, p) for p in (0, 1)}
        for records in stored.values():
            assert offsets(records) == list(range(len(records)))
        assert sum(map(len, stored.values())) == len(acked)
        for value, meta in acked:
            if meta.offset is None:  # not known at publish time: the value is in its partition
                check_acked(client, [meta.offset], [-1])
                assert value in {r.value for r in stored[meta.partition]}
            else:
                assert stored[meta.partition][meta.offset].value == value

    @pytest.mark.parametrize("partitioner", ["crc32", "murmur2"])
    def test_same_key_same_partition(self, client: Client, topic: str, partitioner: str) -> None:
        """L3: a key always lands on the partition its stable hash names
        (murmur2 = Kafka's placement), from any producer and any call."""
        client.create_topic(topic, partitions=5)
        fn = PARTITIONERS[partitioner]
        keys = [f"booking-{i}" for i in range(40)]
        first = client.producer(partitioner=partitioner).send_batch(topic, [b"1"] * 40, keys)
        with client.producer(partitioner=partitioner) as other:
            again = [other.send(topic, b"2", k).result(10) for k in keys]
        for key, a, b in zip(keys, first, again):
            assert a.partition == b.partition == fn(key.encode(), 5)
        for p in range(5):
            for r in read_all(client, topic, p):
                assert r.key is not None and fn(r.key, 5) == p

    def test_tombstone_round_trip(self, client: Client, topic: str) -> None:
        """Records: a value of None is stored and read back as a tombstone."""
        client.create_topic(topic)
        client.produce(topic, b"v", key="k")
        client.produce(topic, None, key="k")
        client.producer().send_batch(topic, [None, b"w"], keys=["k", None])
        got = read_all(client, topic, 0)
        assert [(r.key, r.value, r.is_tombstone) for r in got] == [
            (b"k", b"v", False),
            (b"k", None, True),
            (b"k", None, True),
            (None, b"w", False),
        ]

    def test_headers_and_keys_round_trip(self, client: Client, topic: str) -> None:
        """Records: keys (bytes or str) and headers (incl. non-ASCII and empty
        values) come back exactly; records without headers have none."""
        client.create_topic(topic)
        headers = {"trace-id": "abc123", "ünï": "çødé ✓", "empty": ""}
        client.produce(topic, b"one", key=b"\x00\xffk", headers=headers)
        client.producer().send_batch(
            topic, [b"two", b"three", b""], keys=["k2", None, ""], headers=[{}, {"h": "3"}, {}]
        )
        got = read_all(client, topic, 0)
        assert [(r.key, r.value, dict(r.headers)) for r in got] == [
            (b"\x00\xffk", b"one", headers),
            (b"k2", b"two", {}),
            (None, b"three", {"h": "3"}),
            (b"", b"", {}),
        ]

    def test_any_bytes_round_trip_in_a_call_over_many_partitions(
        self, client: Client, topic: str
    ) -> None:
        """Records: every byte value, in values and keys, comes back exactly
        from a call whose records spread over many partitions (the bulk
        paths: one batch per partition, COPY, spread rows)."""
        client.create_topic(topic, partitions=20)
        every = bytes(range(256))
        values = [every[i:] + every[:i] for i in range(0, 256, 4)] + [b"", b"\\x00", b"\t\n\\"]
        keys = [f"k{i}".encode() + every[i : i + 3] for i in range(len(values))]
        metas = client.producer().send_batch(topic, values, keys=keys)
        sent: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for m, k, v in zip(metas, keys, values):
            sent[m.partition].append((k, v))  # a partition keeps the call's order
        assert len(sent) > 10  # the call did spread
        got = {p: [(r.key, r.value) for r in read_all(client, topic, p)] for p in range(20)}
        assert {p: rs for p, rs in got.items() if rs} == sent

    def test_oversize_record_stores_nothing(self, client: Client, topic: str) -> None:
        """Bad input: a batch holding one record over max_record_bytes raises
        RecordTooLarge and stores none of the batch, in any partition."""
        client.create_topic(topic, partitions=2, max_record_bytes=100)
        producer = client.producer()
        with pytest.raises(RecordTooLarge):
            producer.send_batch(topic, [b"a", b"x" * 101, b"b"], keys=["k1", "k2", "k3"])
        with pytest.raises(RecordTooLarge):
            producer.send(topic, b"y" * 101, partition=0).result(10)
        assert [i.next_offset for i in client.partitions(topic)] == [0, 0]
        check_acked(client, [producer.send_batch(topic, [b"z" * 100], partition=0)[0].offset], [0])

    def test_unencodable_value_raises_serialization_error(self, client: Client, topic: str) -> None:
        """Bad input: a value the codec cannot encode raises SerializationError
        and nothing of the call is stored."""
        client.create_topic(topic)
        producer = client.producer(codec=JSON)
        with pytest.raises(SerializationError):
            producer.send(topic, object())
        with pytest.raises(SerializationError):
            producer.send_batch(topic, [{"ok": 1}, {1, 2}])
        with pytest.raises(SerializationError):
            client.produce(topic, 12345)  # the default bytes codec takes bytes or str
        producer.flush(10)
        assert client.partitions(topic)[0].next_offset == 0
        check_acked(client, [producer.send(topic, {"ok": 1}).result(10).offset], [0])
        producer.close()
        assert read_all(client, topic, 0)[0].value == b'{"ok":1}'

    def test_keyless_records_spread_and_stay_dense(self, client: Client, topic: str) -> None:
        """L2: keyless records may go to any partition, but every partition's
        offsets stay dense and every record is stored once."""
        client.create_topic(topic, partitions=3)
        producer = client.producer(max_batch_records=4)
        metas = [producer.send(topic, str(i).encode()) for i in range(30)]
        producer.close()
        where: dict[int, list[int | None]] = defaultdict(list)
        for m in (a.result(10) for a in metas):
            where[m.partition].append(m.offset)
        total = 0
        for p in range(3):
            records = read_all(client, topic, p)
            assert offsets(records) == list(range(len(records)))
            assert len(where[p]) == len(records)
            check_acked(client, sorted(where[p], key=lambda o: o or 0), offsets(records))
            total += len(records)
        assert total == 30
