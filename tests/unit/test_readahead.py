"""ReadAhead: which positions are handed out and processed, without I/O."""

from __future__ import annotations

from tidings import Record, TopicPartition
from tidings.client.readahead import ReadAhead

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def _records(tp: TopicPartition, offsets: range) -> list[Record]:
    return [Record(tp.topic, tp.partition, o, None, b"v", 0, {}) for o in offsets]


def _read() -> tuple[ReadAhead, dict[TopicPartition, int]]:
    ahead = ReadAhead()
    ahead.use(_records(A, range(10, 15)) + _records(B, range(20, 23)), 0)
    return ahead, {A: 15, B: 23}  # fetch positions after that read


def test_singly_only_the_last_record_is_unprocessed() -> None:
    ahead, fetched = _read()
    for _ in range(6):  # A 10..14, then B 20
        assert ahead.take_one() is not None
    assert ahead.handed(fetched) == {A: 15, B: 21}
    assert ahead.processed(fetched) == {A: 15, B: 20}
    ahead.asked_again()
    assert ahead.processed(fetched) == {A: 15, B: 21}


def test_a_batch_handed_out_is_unprocessed_until_asked_again() -> None:
    ahead, fetched = _read()
    assert [r.offset for r in ahead.hand_out(3)] == [10, 11, 12]
    assert ahead.handed(fetched) == {A: 13, B: 20}
    assert ahead.processed(fetched) == {A: 10, B: 20}
    ahead.asked_again()
    assert [r.offset for r in ahead.hand_out(100)] == [13, 14, 20, 21, 22]
    assert ahead.handed(fetched) == fetched
    assert ahead.processed(fetched) == {A: 13, B: 20}
    assert not ahead.buffered() and ahead.take_one() is None


def test_dropping_a_partition_keeps_the_others_in_place() -> None:
    ahead, fetched = _read()
    ahead.hand_out(2)  # A 10, 11 unprocessed
    ahead.drop({A})
    del fetched[A]  # the consumer forgets the partition too
    assert ahead.handed(fetched) == {B: 20} and ahead.processed(fetched) == {B: 20}
    assert [r.offset for r in ahead.hand_out(10)] == [20, 21, 22]
