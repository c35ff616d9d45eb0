"""Argument types shared by the commands.

Every value is checked while the command line is parsed, so bad input is
a usage error (exit 2, saying what to fix) before anything is opened or
created — not even ``./tidings.db``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ..client.starts import Start
from ..config import parse_duration, parse_size, validate_name
from ..errors import ConfigurationError

T = TypeVar("T")


def _checked(fn: Callable[[str], T], kind: str) -> Callable[[str], T]:
    """``fn`` as an argparse type: its ConfigurationError is the usage message."""

    def check(text: str) -> T:
        try:
            return fn(text)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = kind  # argparse names the type in some messages
    return check


def name(kind: str) -> Callable[[str], str]:
    """A topic, queue or group name (``kind``)."""
    return _checked(lambda text: validate_name(kind, text), f"{kind} name")


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise ConfigurationError(f"must be at least {least}, got {value}")
    return value


count = _checked(lambda text: _whole(text, 1), "count")  # N >= 1
index = _checked(lambda text: _whole(text, 0), "index")  # an offset, partition or id >= 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"expected seconds (e.g. 2.5), got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise ConfigurationError(f"must not be negative, got {text}")
    return value


seconds = _checked(_seconds, "seconds")


def _duration_text(text: str) -> str:
    parse_duration(text, "duration")
    return text


duration = _checked(_duration_text, "duration")  # kept as text; the library parses it


def _size_text(text: str) -> str:
    parse_size(text, "size")
    return text


size = _checked(_size_text, "size")


def parse_start(text: str | None) -> Start:
    """``beginning``, ``end``, an offset (>= 0) or an ISO-8601 time.

    Raises ConfigurationError for anything else."""
    if text is None or text == "end":
        return "end"
    if text == "beginning":
        return "beginning"
    if text.lstrip("+-").isdigit():
        return _whole(text, 0)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"{text!r}: use beginning, end, an offset or an ISO time (2026-11-22T10:00:00Z)"
        ) from None
    return when.astimezone() if when.tzinfo is None else when


def _start_text(text: str) -> str:
    parse_start(text)
    return text


start = _checked(_start_text, "position")  # beginning | end | OFFSET | ISO-TIME
