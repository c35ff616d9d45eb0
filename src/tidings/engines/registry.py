"""Which engine a URL scheme opens: the ``tidings.engines`` entry points.

A distribution registers an engine in its ``pyproject.toml``::

    [project.entry-points."tidings.engines"]
    myscheme = "mypackage.engine:MyEngine"

The object named is called with the URL and returns an
:class:`~tidings.ports.engine.Engine`. tidings registers its own engines the
same way; the in-code table below is the fallback for a checkout that was
never installed (no entry points), and a scheme registered by an installed
distribution replaces it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, cast

from ..errors import ConfigurationError
from ..features import Features
from ..ports.engine import Engine

GROUP = "tidings.engines"
EngineFactory = Callable[[str], Engine]

#: scheme -> "module:attribute", the same table as pyproject.toml's entry points.
BUILTIN: dict[str, str] = {
    "memory": "tidings.engines.memory:MemoryEngine",
    "sqlite": "tidings.engines.sql:SQLiteEngine",
    "postgresql": "tidings.engines.sql.postgres:PostgresEngine",
    "postgres": "tidings.engines.sql.postgres:PostgresEngine",
    "amqp": "tidings.engines.rabbitmq:RabbitMQEngine",
    "amqps": "tidings.engines.rabbitmq:RabbitMQEngine",
}
#: The extra whose driver a built-in engine needs, for the ImportError message.
_EXTRAS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
}


def schemes() -> dict[str, str]:
    """Every known scheme and the ``module:attribute`` that opens it."""
    table = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        table[ep.name.lower()] = ep.value
    return table


def scheme_of(url: str) -> str:
    """``"sqlite"`` from ``"sqlite:///x.db"``; ``""`` when there is none."""
    return url.split(":", 1)[0].lower() if ":" in url else ""


def factory_for(url: str) -> EngineFactory:
    """The callable that opens ``url``. Raises ConfigurationError for an
    unknown scheme, or when the engine's driver is not installed."""
    scheme = scheme_of(url)
    table = schemes()
    target = table.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise ConfigurationError(
            f"unsupported engine URL {url!r}: use one of {known} "
            f"(e.g. memory://, sqlite:///path/to/file.db, postgresql://host/db); "
            f"other engines register the {GROUP!r} entry point"
        )
    return _load(scheme, target)


def _load(scheme: str, target: str) -> EngineFactory:
    module_name, _, attribute = target.partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        hint = f"pip install 'tidings[{extra}]'" if extra else f"install {module_name}"
        raise ConfigurationError(
            f"the {scheme}:// engine could not be imported ({exc}): {hint}"
        ) from exc
    factory: object = module
    for part in attribute.split(".") if attribute else ():
        factory = getattr(factory, part, None)
        if factory is None:
            raise ConfigurationError(f"engine entry point {scheme} = {target!r} names nothing")
    if not callable(factory):
        raise ConfigurationError(f"engine entry point {scheme} = {target!r} is not callable")
    return cast(EngineFactory, factory)


def open_engine(url: str, loop: asyncio.AbstractEventLoop | None = None) -> Engine:
    """Open the engine a URL names (see :func:`factory_for` for what it raises).

    ``loop``: the event loop of an ``AsyncClient``; an engine on an async
    driver that declares ``runs_on_caller_loop`` runs on it (its coroutines
    are then awaited there, with no thread hop); others ignore it."""
    factory = factory_for(url)
    if loop is not None and getattr(factory, "runs_on_caller_loop", False):
        return cast(Engine, cast(Any, factory)(url, loop=loop))
    return factory(url)


def declared_features() -> dict[str, Features | None]:
    """Each registered engine's class-level ``Features`` by its first
    scheme (aliases such as ``postgres`` share their engine's column);
    ``None`` when the engine's driver is not installed."""
    found: dict[str, Features | None] = {}
    seen: set[str] = set()
    for scheme, target in schemes().items():
        if target in seen:
            continue
        seen.add(target)
        try:
            engine = _load(scheme, target)
        except ConfigurationError:
            found[scheme] = None
            continue
        declared = getattr(engine, "features", None)
        found[scheme] = declared if isinstance(declared, Features) else None
    return found
