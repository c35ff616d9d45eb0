"""The buffered producer: every acknowledged record is stored where its ack says."""

from __future__ import annotations

from tidings import Client, TopicPartition


def test_send_beyond_one_batch_stores_every_record_at_its_acked_offset() -> None:
    """L1/L2: flights that fill up while the sender is busy are merged, not
    dropped; each ack's offset holds exactly that record."""
    client = Client("memory://")
    client.create_topic("p-merge", partitions=2)
    producer = client.producer(max_batch_records=7)
    acks = [(producer.send("p-merge", b"v%d" % i, key=b"k%d" % (i % 3)), i) for i in range(500)]
    producer.flush()
    stored = {}
    consumer = client.consumer("p-merge", start="beginning")
    while len(stored) < 500:
        batch = consumer.poll(timeout=1.0)
        assert batch, "records missing"
        stored.update({(r.partition, r.offset): r.value for r in batch})
    for ack, i in acks:
        meta = ack.result()
        assert stored[(meta.partition, meta.offset)] == b"v%d" % i
    for p in (0, 1):
        offsets = sorted(o for (part, o) in stored if part == p)
        assert offsets == list(range(len(offsets)))
    assert consumer.assignment() == {TopicPartition("p-merge", 0), TopicPartition("p-merge", 1)}
    producer.close()
    client.close()


def test_send_batch_returns_metadata_in_input_order() -> None:
    """L3: keyed records of one call split over partitions; metadata follows input order."""
    client = Client("memory://")
    client.create_topic("p-order", partitions=4)
    producer = client.producer()
    keys = [b"a", b"b", b"c", b"a", b"d", b"a"]
    meta = producer.send_batch("p-order", [b"%d" % i for i in range(6)], keys=keys)
    by_key = {}
    for k, m in zip(keys, meta, strict=True):
        by_key.setdefault(k, set()).add(m.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    a_offsets = [m.offset for k, m in zip(keys, meta, strict=True) if k == b"a"]
    assert a_offsets == sorted(a_offsets) and len(set(a_offsets)) == 3
    client.close()
