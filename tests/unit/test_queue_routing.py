"""Exchange routing (Q6) as pure functions: topic patterns and consistent hashing."""

from __future__ import annotations

import pytest

from tidings.errors import ConfigurationError
from tidings.routing import Binding, check_kind, route, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("booking.*", "booking.created", True),
        ("booking.*", "booking", False),  # * is exactly one word
        ("booking.*", "booking.eu.created", False),
        ("booking.#", "booking", True),  # # is zero or more words
        ("booking.#", "booking.eu.created", True),
        ("#.created", "booking.eu.created", True),
        ("#", "", True),
        ("*.eu.#", "booking.eu", True),
        ("*.eu.#", "booking.us.x", False),
        ("a.b", "a.b", True),
        ("a.b", "a.bb", False),
    ],
)
def test_topic_patterns_follow_amqp(pattern: str, key: str, expected: bool) -> None:
    """`*` matches one word, `#` zero or more, words split on dots."""
    assert topic_matches(pattern, key) is expected


def test_direct_and_fanout_route_each_queue_once() -> None:
    """A queue bound twice gets one copy; direct needs the exact key."""
    bindings = [Binding("q1", "a"), Binding("q1", "b"), Binding("q2", "a")]
    assert route("fanout", bindings, "zzz") == ["q1", "q2"]
    assert route("direct", bindings, "a") == ["q1", "q2"]
    assert route("direct", bindings, "b") == ["q1"]
    assert route("direct", bindings, "c") == []


def test_consistent_hash_moves_only_the_new_queues_share() -> None:
    """Adding a queue to a consistent-hash exchange moves keys only to the
    new queue, never between the old ones; weights skew the shares."""
    keys = [f"user-{i}" for i in range(2000)]
    three = [Binding(f"q{i}", "", 1) for i in range(3)]
    before = {k: route("consistent-hash", three, k)[0] for k in keys}
    after = {k: route("consistent-hash", [*three, Binding("q3", "", 1)], k)[0] for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(after[k] == "q3" for k in moved)
    assert len(moved) < len(keys) / 2
    heavy = [Binding("light", "", 1), Binding("heavy", "", 4)]
    shares = [route("consistent-hash", heavy, k)[0] for k in keys]
    assert shares.count("heavy") > 2 * shares.count("light")
    assert route("consistent-hash", [], "k") == []


def test_unknown_exchange_kind_is_a_configuration_error() -> None:
    """Only the four kinds exist."""
    assert check_kind("topic") == "topic"
    with pytest.raises(ConfigurationError, match="headers"):
        check_kind("headers")
