"""The outbox's typed errors: each is a branch of the tree in
:mod:`tidings.errors`, and each docstring says what to do."""

from __future__ import annotations

from ..errors import ConfigurationError, FencedError, NotFoundError


class OutboxSchemaError(NotFoundError):
    """The outbox tables are missing or from another schema version: run
    ``tidings outbox migrate --db URL`` (or ``tidings.outbox.migrate(url)``)
    against this database."""


class OutboxNotFound(NotFoundError):
    """This outbox is not declared in the database: run ``tidings outbox
    migrate --db URL --outbox NAME --shards N`` (or ``declare(url, NAME, N)``)."""


class EmptyRange(NotFoundError):
    """No stored outbox event lies in this range (cleanup may have removed
    it): widen the range or check ``tidings outbox status``."""


class InvalidRange(ConfigurationError):
    """The range's start lies after its end: swap the bounds."""


class RelayFenced(FencedError):
    """Another relay took this shard over (this relay's lease ran out); this
    relay stops forwarding it and will not write its progress."""
