"""The consumer runtime's failed events for the RabbitMQ engine (R2, R3).

RabbitMQ has no place for rows that triage filters, groups, claims and
updates (``tidings failed list/replay/...``): a queue can only be read in
order and destructively. So the engine keeps them in a SQL database named
by its ``failed_store=`` URL option (``sqlite:///PATH`` for one host,
``postgresql://...`` for several), through that SQL engine's own
:class:`~tidings.engines.sql.failed.SqlFailedStore`. The SQL engine is
opened on first use (an engine that only publishes never touches the
database) and closed with the RabbitMQ engine.
"""

from __future__ import annotations

import threading

from ...errors import ConfigurationError, UnsupportedFeature
from ...ports.engine import Engine
from ...ports.failed import FailedStore, failed_store
from ..registry import factory_for, open_engine, scheme_of

#: What to add to an amqp:// URL, shown in the errors.
EXAMPLE = "amqp://guest:guest@127.0.0.1:5672/?failed_store=postgresql://127.0.0.1:5432/test"


class FailedStoreBeside:
    """The SQL engine at ``url`` (``None``: no option given) and its store."""

    def __init__(self, url: str | None) -> None:
        self.url = url or None
        self._engine: Engine | None = None
        self._store: FailedStore | None = None
        self._lock = threading.Lock()
        self._closed = False
        if self.url is not None:
            _check(self.url)

    def store(self) -> FailedStore:
        """The store, opening its SQL engine the first time. Raises
        UnsupportedFeature without the option, ConfigurationError or
        EngineError when its database cannot be opened."""
        if self.url is None:
            raise UnsupportedFeature(
                "the amqp:// engine keeps the runtime's failed events in a SQL database: "
                "add failed_store=sqlite:///PATH.db (one host) or "
                "failed_store=postgresql://HOST/DB (several hosts) to the URL, "
                f"e.g. {EXAMPLE}"
            )
        with self._lock:
            if self._closed:
                raise ConfigurationError("the engine is closed")
            if self._store is None:
                self._store = self._open(self.url)
            return self._store

    def _open(self, url: str) -> FailedStore:
        engine = open_engine(url)
        try:
            store = failed_store(engine)
        except BaseException:
            engine.close()
            raise
        self._engine = engine
        return store

    def close(self) -> None:
        with self._lock:
            self._closed = True
            engine, self._engine, self._store = self._engine, None, None
        if engine is not None:
            engine.close()


def _check(url: str) -> None:
    """Refuse, at open, a failed_store URL that cannot keep failed events
    where ``tidings failed`` in another process would find them."""
    scheme = scheme_of(url)
    if scheme in ("amqp", "amqps", "memory"):
        raise ConfigurationError(
            f"failed_store={url!r} cannot keep failed events (they must outlive this process "
            "and be readable by `tidings failed`): name a SQL database, "
            "sqlite:///PATH.db or postgresql://HOST/DB; percent-encode & in its own "
            "options as %26"
        )
    factory_for(url)  # ConfigurationError for an unknown scheme or a missing driver
