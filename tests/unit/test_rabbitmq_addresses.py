"""Node lists in amqp:// URLs (engines/rabbitmq/addresses.py)."""

from __future__ import annotations

import pytest

from tidings import ConfigurationError
from tidings.engines.rabbitmq.addresses import parse


def test_one_host_keeps_the_url() -> None:
    (node,) = parse("amqp://guest:guest@127.0.0.1:5672/vh?heartbeat=10")
    assert node.url == "amqp://guest:guest@127.0.0.1:5672/vh?heartbeat=10"
    assert node.name == "127.0.0.1:5672"


def test_a_node_list_shares_credentials_vhost_and_options() -> None:
    nodes = parse("amqp://u:p%40ss@10.0.0.1:5673,10.0.0.2,rabbit-3:5675/vh?heartbeat=10")
    assert [n.name for n in nodes] == ["10.0.0.1:5673", "10.0.0.2:5672", "rabbit-3:5675"]
    assert [n.url for n in nodes] == [
        "amqp://u:p%40ss@10.0.0.1:5673/vh?heartbeat=10",
        "amqp://u:p%40ss@10.0.0.2:5672/vh?heartbeat=10",
        "amqp://u:p%40ss@rabbit-3:5675/vh?heartbeat=10",
    ]


def test_default_ports_by_scheme_and_ipv6() -> None:
    nodes = parse("amqps://h1,[::1],[fe80::2]:5000/")
    assert [n.name for n in nodes] == ["h1:5671", "[::1]:5671", "[fe80::2]:5000"]
    assert nodes[1].url == "amqps://[::1]:5671/"


def test_without_credentials() -> None:
    assert [n.url for n in parse("amqp://a,b/")] == ["amqp://a:5672/", "amqp://b:5672/"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("amqp://u:p@a,,b/", "empty host"),
        ("amqp://u:p@a:99999/", "bad port"),
        ("amqp://u:p@a:x/", "bad port"),
        ("amqp://u:p@a:5672,a:5672/", "listed twice"),
        ("amqp://u:p@a,a:5672/", "listed twice"),
        ("amqp://[::1/", "IPv6"),
        ("http://a/", "not an amqp"),
    ],
)
def test_bad_node_lists_say_what_to_fix(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse(url)


def test_the_engine_refuses_a_reconnect_timeout_past_the_operation_timeout() -> None:
    from tidings.engines.rabbitmq import RabbitMQEngine

    with pytest.raises(ConfigurationError, match="reconnect_timeout"):
        RabbitMQEngine("amqp://127.0.0.1:1/?reconnect_timeout=30s&operation_timeout=10s")


def test_stream_port_is_one_for_every_node_or_one_per_node() -> None:
    """The stream connection fails over across the URL's nodes too: each
    node's host with ``stream_port`` (one value for all, or one per node in
    the URL's order); anything else is a ConfigurationError saying so."""
    from tidings.engines.rabbitmq import _stream_link

    nodes = parse("amqp://u:p@h1:5672,h2:5673,h3/v")
    assert _stream_link(nodes, "5552")._endpoints == [("h1", 5552), ("h2", 5552), ("h3", 5552)]
    assert _stream_link(nodes, "1,2,3")._endpoints == [("h1", 1), ("h2", 2), ("h3", 3)]
    assert _stream_link(nodes, "5552")._login == ("v", "u", "p")
    with pytest.raises(ConfigurationError, match="2 ports for 3 nodes"):
        _stream_link(nodes, "1,2")
    with pytest.raises(ConfigurationError, match="one per node listed"):
        _stream_link(nodes, "x")
    with pytest.raises(ConfigurationError, match="1-65535"):
        _stream_link(nodes, "70000")
