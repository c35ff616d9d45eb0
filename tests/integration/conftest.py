"""Fixtures for the end-to-end tests."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator

import pytest

from tidings import Client
from tidings.cli.main import main
from tidings.testing.pytest_plugin import require_engine, service_reachable

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(url, *argv, stdin="")`` runs ``tidings --url URL ARGV`` in this
    process with ``stdin`` on a real pipe; returns (exit code, stdout, stderr)."""

    def run(url: str, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        capsys.readouterr()
        r, w = os.pipe()
        os.write(w, stdin.encode())
        os.close(w)
        saved = sys.stdin
        sys.stdin = io.TextIOWrapper(os.fdopen(r, "rb"))
        try:
            code = main(["--url", url, *argv])
        finally:
            sys.stdin.close()
            sys.stdin = saved
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """RabbitMQ clients a test opens (``rabbit_clients.open_client``); each
    deletes the queues it declared, then closes."""
    require_engine("rabbitmq", service_reachable("127.0.0.1", 5672))
    opened: list[Client] = []
    yield opened
    for client in opened:
        try:
            client.engine.queues.delete_declared()  # type: ignore[attr-defined]
        finally:
            client.close()
