"""Build a handler's payload from a message body, by its type annotation.

``bytes`` (or no annotation) passes the body through; ``str`` decodes UTF-8;
``dict``/``list``/``Any``/``object`` decode JSON; a pydantic v2 model is
validated from JSON; a dataclass is built from a JSON object whose fields
are checked (missing, unknown, and wrongly typed simple fields). A body
that does not fit raises SerializationError: the runtime parks such a
message as poison. A type none of these can build is refused when the
handler is defined (ConfigurationError).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError, SerializationError

Decoder = Callable[[bytes | None], Any]
_SIMPLE = (int, float, str, bool, list, dict)


def _raw(body: bytes | None) -> Any:
    return body


def _text(body: bytes | None) -> str:
    try:
        return (body or b"").decode()
    except UnicodeDecodeError as exc:
        raise SerializationError(f"payload is not UTF-8 text: {exc}") from exc


def _json(body: bytes | None) -> Any:
    try:
        return json.loads(body or b"")
    except ValueError as exc:
        raise SerializationError(f"payload is not valid JSON: {exc}") from exc


def _pydantic(model: Any) -> Decoder:
    def decode(body: bytes | None) -> Any:
        try:
            return model.model_validate_json(body or b"")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise SerializationError(f"invalid {model.__name__}: {exc}") from exc

    return decode


def _dataclass(cls: Any) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = {
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }

    def decode(body: bytes | None) -> Any:
        obj = _json(body)
        if not isinstance(obj, dict):
            raise SerializationError(f"invalid {cls.__name__}: expected a JSON object")
        _check_fields(cls.__name__, obj, fields, required, hints)
        return cls(**obj)

    return decode


def _check_fields(
    name: str, obj: dict[str, Any], fields: Any, required: set[str], hints: dict[str, Any]
) -> None:
    missing, unknown = required - obj.keys(), obj.keys() - fields.keys()
    if missing or unknown:
        raise SerializationError(
            f"invalid {name}: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    for key, value in obj.items():
        want = hints.get(key)
        if want in _SIMPLE and not _fits(value, want):
            raise SerializationError(
                f"invalid {name}: field {key!r} should be {want.__name__}, "
                f"got {type(value).__name__}"
            )


def _fits(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, want)


def decoder_for(annotation: Any) -> Decoder:
    """The decoder for a handler's payload annotation; raises
    ConfigurationError for a type no codec can build."""
    origin = typing.get_origin(annotation) or annotation
    if annotation in (None, bytes, inspect_empty()):
        return _raw
    if annotation is str:
        return _text
    if origin in (dict, list, object) or annotation is Any:
        return _json
    if hasattr(annotation, "model_validate_json"):
        return _pydantic(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _dataclass(annotation)
    raise ConfigurationError(
        f"no codec can build a handler payload of type {annotation!r}: annotate it as bytes, "
        "str, dict, a pydantic model or a dataclass"
    )


def inspect_empty() -> Any:
    import inspect

    return inspect.Parameter.empty
