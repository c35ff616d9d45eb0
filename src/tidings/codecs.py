"""Codecs turn application values into bytes and back.

The engines store bytes only; a codec is chosen per producer/consumer::

    >>> JSON.encode({"id": 1})
    b'{"id":1}'
    >>> JSON.decode(b'{"id":1}')
    {'id': 1}
"""

from __future__ import annotations

import json
from typing import Any, Generic, Protocol, TypeVar

from .errors import SerializationError

T = TypeVar("T")


class Codec(Protocol[T]):
    """Encodes values of one type to bytes and back.

    ``encode`` and ``decode`` raise :class:`SerializationError`.
    """

    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class BytesCodec:
    """Passes bytes through; ``str`` is encoded as UTF-8."""

    def encode(self, value: bytes | str) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        raise SerializationError(
            f"the bytes codec takes bytes or str, not {type(value).__name__}; "
            "pass codec=JSON for other values"
        )

    def decode(self, data: bytes) -> bytes:
        return data


class JsonCodec:
    """Compact JSON, UTF-8."""

    def encode(self, value: Any) -> bytes:
        try:
            # allow_nan=False: NaN/Infinity are not JSON and other readers reject them.
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"value is not JSON-serializable: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise SerializationError(f"value is not valid JSON: {exc}") from exc


class PydanticCodec(Generic[T]):
    """JSON through a pydantic model (pydantic v2): ``PydanticCodec(Booking)``."""

    def __init__(self, model: type[T]) -> None:
        if not hasattr(model, "model_validate_json"):
            raise SerializationError(f"{model!r} is not a pydantic v2 model")
        self.model = model

    def encode(self, value: T) -> bytes:
        if not isinstance(value, self.model):
            raise SerializationError(f"expected {self.model.__name__}, got {type(value).__name__}")
        return value.model_dump_json().encode()  # type: ignore[attr-defined, no-any-return]

    def decode(self, data: bytes) -> T:
        try:
            return self.model.model_validate_json(data)  # type: ignore[attr-defined, no-any-return]
        except ValueError as exc:
            raise SerializationError(f"invalid {self.model.__name__}: {exc}") from exc


BYTES = BytesCodec()
JSON = JsonCodec()
