"""How the stream side of the amqp:// engine reports RabbitMQ's refusals."""

from __future__ import annotations

import asyncio

import pytest
from rstream import exceptions as rx

from tidings.engines.rabbitmq.streams import typed
from tidings.errors import EngineError, EngineUnavailable


def test_a_stream_not_available_yet_is_retriable() -> None:
    """A stream that is starting (just created) or electing a leader refuses
    requests for a moment: a retriable EngineUnavailable that says so, which
    the producer's retries ride out, not a bare EngineError."""

    async def refused() -> None:
        raise rx.StreamNotAvailable()

    with pytest.raises(EngineUnavailable, match="not available yet") as caught:
        asyncio.run(typed(refused()))
    assert caught.value.retriable


def test_other_refusals_stay_engine_errors() -> None:
    async def refused() -> None:
        raise rx.AccessRefused()

    with pytest.raises(EngineError, match="refused a request") as caught:
        asyncio.run(typed(refused()))
    assert not isinstance(caught.value, EngineUnavailable)
