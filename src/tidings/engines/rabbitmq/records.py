"""Records as AMQP 1.0 messages in a RabbitMQ stream, so other stream
clients can read them: the value is the body, headers are application
properties, the append time is ``properties.creation_time`` (ms) and the key
a message annotation. A tombstone carries an annotation (an AMQP message
with an empty body and one without a body look alike once encoded).

The bytes are written and read by amqpwire.py (the same bytes rstream's
codec writes, at a fraction of its cost); a message of another shape,
written by another client, is read by rstream's general decoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rstream import AMQPMessage, Properties, amqp_decoder

from ...errors import CorruptDataError
from ...message import Headers, Record
from . import amqpwire
from .amqpwire import KEY, TOMBSTONE


def encode(value: bytes | None, key: bytes | None, headers: Headers, timestamp: int) -> bytes:
    """One record as the bytes of an AMQP 1.0 message."""
    return amqpwire.encode(value, key, headers, timestamp)


def encode_general(
    value: bytes | None, key: bytes | None, headers: Headers, timestamp: int
) -> bytes:
    """What :func:`encode` writes, by rstream's codec (tests compare them)."""
    annotations: dict[bytes, Any] = {}
    if key is not None:
        annotations[KEY] = key
    if value is None:
        annotations[TOMBSTONE] = True
    message = AMQPMessage(
        body=value or None,
        message_annotations=annotations or None,
        application_properties=dict(headers) if headers else None,
        properties=Properties(creation_time=timestamp),
    )
    return bytes(message)


def encode_all(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None] | None,
    headers: Sequence[Headers] | None,
    timestamp: int,
) -> list[bytes]:
    if not keys and not headers:  # the common case: no per-record lookups
        return [amqpwire.encode(v, None, {}, timestamp) for v in values]
    return [
        encode(v, keys[i] if keys else None, headers[i] if headers else {}, timestamp)
        for i, v in enumerate(values)
    ]


def decode(topic: str, partition: int, offset: int, data: bytes, chunk_ts: int) -> Record:
    """The record stored at ``offset``; a message without a creation time
    (written by another stream client) gets its chunk's (broker) timestamp.
    Raises CorruptDataError."""
    fast = amqpwire.decode(data)
    if fast is not None:
        return Record(topic, partition, offset, fast.key, fast.value, fast.timestamp, fast.headers)
    return decode_general(topic, partition, offset, data, chunk_ts)


def decode_general(topic: str, partition: int, offset: int, data: bytes, chunk_ts: int) -> Record:
    """:func:`decode` by rstream's general decoder (any AMQP 1.0 message)."""
    try:
        message = amqp_decoder(data)
    except Exception as exc:  # pyamqp raises assorted errors on bad bytes
        raise CorruptDataError(
            f"{topic} partition {partition} offset {offset}: not an AMQP 1.0 message ({exc})"
        ) from exc
    annotations = message.message_annotations or {}
    props = message.properties
    timestamp = int(props.creation_time) if props and props.creation_time is not None else chunk_ts
    value = None if annotations.get(TOMBSTONE) else _bytes(message.body)
    return Record(
        topic,
        partition,
        offset,
        annotations.get(KEY),
        value,
        timestamp,
        _headers(message.application_properties),
    )


def _bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, list):  # several data sections (written by another client)
        return b"".join(body)
    return bytes(body)


def _headers(props: dict[Any, Any] | None) -> Headers:
    if not props:
        return {}
    return {_text(k): _text(v) for k, v in props.items()}


def _text(item: Any) -> str:
    return item.decode() if isinstance(item, bytes) else str(item)
