"""amqpwire.py writes the bytes rstream's general AMQP 1.0 codec writes for
a tidings record, and reads them back the same; anything shaped otherwise
is left to the general decoder."""

from __future__ import annotations

import random

from rstream import AMQPMessage, Properties

from tidings.engines.rabbitmq import amqpwire, records


def _cases() -> list[tuple[bytes | None, bytes | None, dict[str, str], int]]:
    rnd = random.Random(7)

    def some(n: int) -> bytes:
        return bytes(rnd.getrandbits(8) for _ in range(n))

    out = []
    for _ in range(400):
        value = rnd.choice([None, b"", some(rnd.choice([1, 100, 255, 256, 70_000]))])
        key = rnd.choice([None, None, b"", some(rnd.choice([1, 250, 256]))])
        headers = {
            f"h{j}é" * rnd.choice([1, 40]): "ü" * rnd.choice([0, 1, 127, 200])
            for j in range(rnd.choice([0, 0, 1, 3, 130]))
        }
        out.append((value, key, headers, rnd.choice([0, 1_700_000_000_000, 2**40])))
    return out


def test_the_same_bytes_as_the_general_codec() -> None:
    """400 random records (tombstones, empty values, keys and headers
    around the 255-byte boundary of the short encodings, 130 headers)."""
    for value, key, headers, ts in _cases():
        fast = records.encode(value, key, headers, ts)
        assert fast == records.encode_general(value, key, headers, ts), (value, key, headers)
        read = records.decode("t", 3, 9, fast, chunk_ts=1)
        assert read == records.decode_general("t", 3, 9, fast, chunk_ts=1)
        assert (read.key, read.timestamp, dict(read.headers)) == (key, ts, headers)
        assert read.value == value


def test_another_clients_message_goes_to_the_general_decoder() -> None:
    """A message with sections tidings does not write (a subject, a content
    type, a string body annotation) is not misread by the fast path."""
    message = AMQPMessage(
        body=b"payload",
        properties=Properties(subject=b"s", creation_time=5),
        message_annotations={b"x-other": b"v"},
    )
    data = bytes(message)
    assert amqpwire.decode(data) is None
    read = records.decode("t", 0, 1, data, chunk_ts=77)
    assert (read.value, read.timestamp, read.key) == (b"payload", 5, None)


def test_a_message_without_creation_time_takes_the_chunks() -> None:
    data = bytes(AMQPMessage(body=b"v"))
    assert amqpwire.decode(data) is None
    assert records.decode("t", 0, 1, data, chunk_ts=77).timestamp == 77


def test_damaged_bytes_never_crash_the_fast_path() -> None:
    """Every truncation of a record is refused by the fast path (None: the
    general decoder decides), but for a cut between two sections, which is
    a whole message: read as the general decoder reads it."""
    whole = records.encode(b"x" * 300, b"key", {"a": "b"}, 12)
    whole_sections = 0
    for cut in range(len(whole)):
        got = amqpwire.decode(whole[:cut])
        if got is not None:
            whole_sections += 1
            general = records.decode_general("t", 0, 0, whole[:cut], chunk_ts=0)
            assert (got.key, got.value, got.timestamp) == (general.key, general.value, 12)
    assert whole_sections == 2  # after the properties, after the app properties
