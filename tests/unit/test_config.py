"""Typed settings: validated at construction, errors name the option."""

from __future__ import annotations

import pytest

from tidings.config import (
    DEFAULT_URL,
    GroupConfig,
    ProducerConfig,
    TopicConfig,
    default_url,
    parse_duration,
    parse_size,
    validate_name,
)
from tidings.errors import ConfigurationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (0.5, 0.5),
        ("30", 30.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1w", 604800.0),
        (" 1.5s ", 1.5),
    ],
)
def test_parse_duration(text: float | str, seconds: float) -> None:
    """Config: durations accept numbers and unit suffixes."""
    assert parse_duration(text, "opt") == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "-1s", -1, True, "1y", ""])
def test_parse_duration_rejects_with_option_name(bad: object) -> None:
    """Config: a bad duration raises ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match="retention"):
        parse_duration(bad, "retention")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1024, 1024),
        ("512", 512),
        ("512B", 512),
        ("64KB", 64 << 10),
        ("1GB", 1 << 30),
        ("2m", 2 << 20),
        ("1.5K", 1536),
        ("1TiB", 1 << 40),
    ],
)
def test_parse_size(text: int | str, size: int) -> None:
    """Config: sizes accept bytes and K/M/G/T suffixes (powers of 1024)."""
    assert parse_size(text, "opt") == size


@pytest.mark.parametrize("bad", ["lots", "1PB", -5, False, "1 G B"])
def test_parse_size_rejects_with_option_name(bad: object) -> None:
    """Config: a bad size raises ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match="retention_bytes"):
        parse_size(bad, "retention_bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a", "bookings", "Orders.v2", "x_y-z", "9lives", "a" * 249])
def test_valid_names(name: str) -> None:
    """Names: letters, digits, . _ - up to 249 characters, starting alphanumeric."""
    assert validate_name("topic", name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "_x", "-x", "a b", "a/b", "a" * 250, "é", None])
def test_invalid_names(name: object) -> None:
    """Names: anything else raises ConfigurationError naming the kind."""
    with pytest.raises(ConfigurationError, match="invalid queue name"):
        validate_name("queue", name)  # type: ignore[arg-type]


def test_topic_config_defaults() -> None:
    """Config: a topic defaults to one partition, kept forever, fsynced, 1 MiB records."""
    c = TopicConfig("t")
    assert (c.partitions, c.retention_s, c.retention_bytes, c.compact) == (1, None, None, False)
    assert (c.durability, c.max_record_bytes, c.tombstone_retention_s) == ("fsync", 1 << 20, 86400)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"partitions": 0}, "partitions"),
        ({"partitions": 10_001}, "partitions"),
        ({"partitions": 1.5}, "partitions"),
        ({"retention_s": 0}, "retention"),
        ({"retention_bytes": -1}, "retention_bytes"),
        ({"durability": "never"}, "durability"),
        ({"max_record_bytes": 0}, "max_record_bytes"),
        ({"tombstone_retention_s": -1}, "tombstone_retention"),
        ({"name": "bad name"}, "name"),
    ],
)
def test_topic_config_rejects(options: dict[str, object], option: str) -> None:
    """Config: each bad topic option fails at construction, naming it."""
    kwargs: dict[str, object] = {"name": "t", **options}
    with pytest.raises(ConfigurationError, match=option):
        TopicConfig(**kwargs)  # type: ignore[arg-type]


def test_topic_config_is_frozen() -> None:
    """Config: settings are immutable once validated."""
    c = TopicConfig("t")
    with pytest.raises(AttributeError):
        c.partitions = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"session_timeout_s": 0}, "session_timeout"),
        ({"heartbeat_interval_s": -1}, "heartbeat"),
        ({"session_timeout_s": 1, "heartbeat_interval_s": 1}, "heartbeat_interval"),
        ({"strategy": "random"}, "strategy"),
    ],
)
def test_group_config_rejects(options: dict[str, object], option: str) -> None:
    """Config: bad group timing or strategy fails at construction, naming it."""
    with pytest.raises(ConfigurationError, match=option):
        GroupConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"linger_s": -1}, "linger"),
        ({"max_batch_records": 0}, "max_batch_records"),
        ({"max_batch_bytes": 0}, "max_batch_bytes"),
        ({"partitioner": "fnv"}, "partitioner"),
    ],
)
def test_producer_config_rejects(options: dict[str, object], option: str) -> None:
    """Config: bad producer options fail at construction, naming them."""
    with pytest.raises(ConfigurationError, match=option):
        ProducerConfig(**options)  # type: ignore[arg-type]


def test_default_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Config: the engine URL comes from TIDINGS_URL, else the local SQLite file."""
    monkeypatch.delenv("TIDINGS_URL", raising=False)
    assert default_url() == DEFAULT_URL == "sqlite:///./tidings.db"
    monkeypatch.setenv("TIDINGS_URL", "memory://")
    assert default_url() == "memory://"
    monkeypatch.setenv("TIDINGS_URL", "")
    assert default_url() == DEFAULT_URL
