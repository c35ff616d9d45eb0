"""Exchange routing (Q6): which bound queues get a copy of a publish.

Pure functions, so every engine routes the same way::

    >>> topic_matches("booking.*.created", "booking.eu.created")
    True
    >>> topic_matches("booking.#", "booking")
    True
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Sequence
from typing import NamedTuple

from .errors import ConfigurationError

KINDS = ("fanout", "direct", "topic", "consistent-hash")


class Binding(NamedTuple):
    queue: str
    key: str
    weight: int = 1


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigurationError(f"exchange kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def route(kind: str, bindings: Sequence[Binding], routing_key: str) -> list[str]:
    """The queues (sorted, each once) that receive a message."""
    if kind == "fanout":
        chosen = {b.queue for b in bindings}
    elif kind == "direct":
        chosen = {b.queue for b in bindings if b.key == routing_key}
    elif kind == "topic":
        chosen = {b.queue for b in bindings if topic_matches(b.key, routing_key)}
    else:
        chosen = {_ring_pick(bindings, routing_key)} if bindings else set()
    return sorted(chosen)


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: words split on ``.``; ``*`` is exactly one word,
    ``#`` zero or more."""
    return _match(pattern.split("."), key.split(".") if key else [])


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])


def _ring_pick(bindings: Sequence[Binding], routing_key: str) -> str:
    """Consistent hashing as RabbitMQ's exchange does: each binding puts
    ``weight`` points on a ring; a key goes to the next point clockwise, so
    adding a queue moves only the keys that now land on its points."""
    ring = sorted(
        (zlib.crc32(f"{b.queue}#{i}".encode()), b.queue)
        for b in bindings
        for i in range(max(1, b.weight) * 16)
    )
    h = zlib.crc32(routing_key.encode())
    i = bisect_left(ring, (h, ""))
    return ring[i % len(ring)][1]
