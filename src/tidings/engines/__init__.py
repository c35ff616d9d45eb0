"""Engines and their selection by URL.

``memory://`` → :class:`MemoryEngine`; ``sqlite:///path`` →
:class:`SQLiteEngine`; ``postgresql://…`` → :class:`PostgresEngine`;
``amqp://…`` → the RabbitMQ engine (queues). The scheme is looked up in the
``tidings.engines`` entry points (:mod:`tidings.engines.registry`), so a
third-party package can add an engine. Drivers are imported only under
``tidings.engines`` (enforced by ruff's banned-api rule).
"""

from __future__ import annotations

from .registry import open_engine

__all__ = ["open_engine"]
