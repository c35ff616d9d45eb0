"""A produce call spread over many partitions is validated by a fast pass
over all of them; whatever that pass doubts is checked partition by
partition, so bad input anywhere raises the same typed error as before and
a good call passes."""

from __future__ import annotations

import pytest

from tidings.config import TopicConfig
from tidings.engines._common import check_batches
from tidings.errors import ConfigurationError, PartitionNotFound, RecordTooLarge
from tidings.ports.log import PartitionedColumns, RecordColumns

CONFIG = TopicConfig(name="t", partitions=1_000, max_record_bytes=100)


def _spread(**change: RecordColumns) -> dict[object, RecordColumns]:
    batches: dict[object, RecordColumns] = {
        p: RecordColumns([b"v" * 100], [b"k%d" % p], None) for p in range(1_000)
    }
    for key, cols in change.items():
        batches[int(key[1:]) if key[1:].isdigit() else key] = cols
    return batches


def test_a_sound_spread_call_passes() -> None:
    check_batches(CONFIG, _spread())  # type: ignore[arg-type]
    tombstone = RecordColumns([None, b"x"], [b"a", b"b"], [{}, {"h": "1"}])
    check_batches(CONFIG, _spread(p500=tombstone))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        ({"p999": RecordColumns([b"v" * 101], None, None)}, RecordTooLarge, "101 bytes"),
        ({"p3": RecordColumns([None, b"v" * 101], [b"a", b"b"])}, RecordTooLarge, "101 bytes"),
        ({"p7": RecordColumns([b"a", b"b"], [b"k"], None)}, ConfigurationError, "keys has 1"),
        ({"p8": RecordColumns([b"a"], None, [{}, {}])}, ConfigurationError, "headers has 2"),
    ],
)
def test_bad_columns_anywhere_are_named(
    change: dict[str, RecordColumns], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        check_batches(CONFIG, _spread(**change))  # type: ignore[arg-type]


@pytest.mark.parametrize("partition", [1_000, -1, "p", 2.5])
def test_a_partition_out_of_range_or_not_int_is_refused(partition: object) -> None:
    batches = _spread()
    batches[partition] = RecordColumns([b"v"])
    with pytest.raises(PartitionNotFound, match=repr(partition)):
        check_batches(CONFIG, batches)  # type: ignore[arg-type]


def _flat(values: list[bytes | None], partitions: list[object] | None = None) -> PartitionedColumns:
    parts = partitions if partitions is not None else list(range(len(values)))
    return PartitionedColumns(parts, [1] * len(values), values, [b"k"] * len(values), None)  # type: ignore[arg-type]


def test_flat_columns_take_the_same_checks() -> None:
    """A producer's flat columns (PartitionedColumns) pass the fast check
    when sound, and anything doubtful is checked partition by partition,
    naming the culprit."""
    check_batches(CONFIG, _flat([b"v" * 100] * 1_000))
    check_batches(CONFIG, _flat([None, *[b"v"] * 999]))  # a tombstone: the slow path, sound
    with pytest.raises(RecordTooLarge, match="101 bytes"):
        check_batches(CONFIG, _flat([*[b"v"] * 999, b"v" * 101]))
    for bad in (1_000, -1, "p"):
        with pytest.raises(PartitionNotFound):
            check_batches(CONFIG, _flat([b"v", b"v"], [0, bad]))
    mismatched = PartitionedColumns([0, 1], [1, 1], [b"a", b"b"], [b"k"], None)
    with pytest.raises(ConfigurationError):
        check_batches(CONFIG, mismatched)
