"""Node addresses in an ``amqp://`` URL: one host or a comma-separated list
sharing the credentials, vhost and options, as libpq and MongoDB URLs (and
RabbitMQ's own ``Address[]`` in the Java client) list them::

    amqp://guest:guest@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost?heartbeat=10

Each becomes a single-host URL aio-pika can open; the client tries them in
order and fails over to the next one."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ...errors import ConfigurationError

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True)
class Address:
    """One node: ``url`` opens it (credentials included), ``name`` is for
    messages (``host:port``, no credentials)."""

    url: str
    name: str


def parse(url: str) -> list[Address]:
    """The nodes of ``url`` in the order given. Raises ConfigurationError for
    an empty host, a bad port, or a node listed twice."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # unbalanced [ ] around an IPv6 address
        raise ConfigurationError(f"bad IPv6 address in the URL ({exc}): write [addr]:port") from exc
    if parts.scheme not in _DEFAULT_PORTS:
        raise ConfigurationError(f"not an amqp:// or amqps:// URL: {_scheme(url)}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    out: list[Address] = []
    for item in hosts.split(","):
        host, port = _host_port(item.strip(), _DEFAULT_PORTS[parts.scheme])
        name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if any(a.name == name for a in out):
            raise ConfigurationError(f"RabbitMQ node {name} is listed twice in the URL")
        netloc = f"{userinfo}{at}{name}"
        out.append(Address(urlunsplit(parts._replace(netloc=netloc)), name))
    return out


def _host_port(item: str, default: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ConfigurationError(f"bad IPv6 address {item!r} in the URL: write [addr]:port")
        port_text = rest[1:]
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ConfigurationError(
            f"empty host in the URL's node list ({item!r}): write host:port,host:port"
        )
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"bad port {port_text!r} for {host} in the URL: use 1-65535")
    return host, int(port_text)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://…" if "://" in url else "(no scheme)"
