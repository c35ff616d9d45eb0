"""Records as AMQP 1.0 messages in a RabbitMQ stream, so other stream
clients can read them: the value is the body, headers are application
properties, the append time is ``properties.creation_time`` (ms) and the key
a message annotation. A tombstone carries an annotation (an AMQP message
with an empty body and one without a body look alike once encoded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rstream import AMQPMessage, Properties, amqp_decoder

from ...errors import CorruptDataError
from ...message import Headers, Record

KEY = b"x-tidings-key"
TOMBSTONE = b"x-tidings-tombstone"


def encode(value: bytes | None, key: bytes | None, headers: Headers, timestamp: int) -> bytes:
    """One record as the bytes of an AMQP 1.0 message."""
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
    return [
        encode(v, keys[i] if keys else None, headers[i] if headers else {}, timestamp)
        for i, v in enumerate(values)
    ]


def decode(topic: str, partition: int, offset: int, data: bytes, chunk_ts: int) -> Record:
    """The record stored at ``offset``; a message without a creation time
    (written by another stream client) gets its chunk's (broker) timestamp.
    Raises CorruptDataError."""
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
