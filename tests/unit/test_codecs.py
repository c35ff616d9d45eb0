"""Codecs: values to bytes and back; failures are SerializationError."""

from __future__ import annotations

import pydantic
import pytest

from tidings.codecs import BYTES, JSON, PydanticCodec
from tidings.errors import SerializationError


class Booking(pydantic.BaseModel):
    id: int
    guest: str


def test_bytes_codec_passes_bytes_and_encodes_str() -> None:
    """Codecs: bytes pass through; str, bytearray and memoryview become bytes."""
    assert BYTES.encode(b"\x00raw") == b"\x00raw"
    assert BYTES.encode("héllo") == "héllo".encode()
    assert BYTES.encode(bytearray(b"ab")) == b"ab"  # type: ignore[arg-type]
    assert BYTES.encode(memoryview(b"cd")) == b"cd"  # type: ignore[arg-type]
    assert BYTES.decode(b"x") == b"x"


@pytest.mark.parametrize("value", [1, 1.5, {"a": 1}, [b"x"], object()])
def test_bytes_codec_refuses_other_values(value: object) -> None:
    """Codecs: the bytes codec refuses non-bytes with a hint to use JSON."""
    with pytest.raises(SerializationError, match="codec=JSON"):
        BYTES.encode(value)  # type: ignore[arg-type]


def test_json_round_trip_compact_utf8() -> None:
    """Codecs: JSON is compact UTF-8 and round-trips."""
    value = {"id": 1, "name": "Zoë", "tags": ["a", None], "ok": True}
    data = JSON.encode(value)
    assert data == '{"id":1,"name":"Zoë","tags":["a",null],"ok":true}'.encode()
    assert JSON.decode(data) == value


@pytest.mark.parametrize("value", [object(), {1, 2}, {"x": b"bytes"}, float("nan")])
def test_json_refuses_unencodable(value: object) -> None:
    """Codecs: a value JSON cannot represent raises SerializationError."""
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        JSON.encode(value)


@pytest.mark.parametrize("data", [b"{", b"\xff\xfe", b"", b"nope"])
def test_json_refuses_invalid_input(data: bytes) -> None:
    """Codecs: bytes that are not JSON raise SerializationError on decode."""
    with pytest.raises(SerializationError, match="not valid JSON"):
        JSON.decode(data)


def test_pydantic_round_trip() -> None:
    """Codecs: pydantic models are stored as their JSON and validated on read."""
    codec = PydanticCodec(Booking)
    data = codec.encode(Booking(id=7, guest="Ann"))
    assert data == b'{"id":7,"guest":"Ann"}'
    assert codec.decode(data) == Booking(id=7, guest="Ann")


def test_pydantic_refuses_wrong_type_and_invalid_data() -> None:
    """Codecs: a value of another type, or data failing validation, raises
    SerializationError."""
    codec = PydanticCodec(Booking)
    with pytest.raises(SerializationError, match="expected Booking"):
        codec.encode({"id": 7, "guest": "Ann"})  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="invalid Booking"):
        codec.decode(b'{"id":"seven"}')
    with pytest.raises(SerializationError, match="invalid Booking"):
        codec.decode(b"not json")


def test_pydantic_codec_needs_a_v2_model() -> None:
    """Codecs: building a PydanticCodec from a non-model fails early."""
    with pytest.raises(SerializationError, match="pydantic v2 model"):
        PydanticCodec(dict)
