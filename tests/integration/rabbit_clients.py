"""Clients on the shared RabbitMQ for the amqp:// tests: the URL, and
opening a client that the ``clients`` fixture (conftest.py) cleans up."""

from __future__ import annotations

from tidings import Client

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def open_client(clients: list[Client], url: str = AMQP) -> Client:
    """A client on ``url``, deleted with what it declared after the test."""
    client = Client(url)
    clients.append(client)
    return client
