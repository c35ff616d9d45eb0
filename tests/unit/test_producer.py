"""The buffered producer: every acknowledged record is stored where its ack says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidings import Client, TopicPartition
from tidings.client.producer import _split


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


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=60),
    st.booleans(),
    st.booleans(),
)
def test_split_groups_by_partition_keeping_each_partition_in_call_order(
    slots: list[int], keyed: bool, with_headers: bool
) -> None:
    """The flat split (a sort by partition, no loop per record) gives each
    partition its records in call order, and ``order[i]`` is record i's
    index in its partition's batch."""
    n = len(slots)
    values: list[bytes | None] = [b"v%d" % i for i in range(n)]
    keys: list[bytes | None] | None = [b"k%d" % i for i in range(n)] if keyed else None
    headers = [{"i": str(i)} for i in range(n)] if with_headers else None
    columns, order = _split(slots, values, keys, headers)
    assert list(columns) == sorted(set(slots))
    for p, cols in columns.items():
        mine = [i for i in range(n) if slots[i] == p]
        assert list(cols.values) == [values[i] for i in mine]
        assert cols.keys == (None if keys is None else [keys[i] for i in mine])
        assert cols.headers == (None if headers is None else [headers[i] for i in mine])
        assert [order[i] for i in mine] == list(range(len(mine)))
