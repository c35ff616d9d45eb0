"""What differs between the SQL databases beyond statement text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .database import translate as translate_sqlite


def _same(conn: Any) -> Any:
    return conn


def _no_notify(conn: Any, channel: str) -> None:
    """SQLite has no in-transaction notification: waiters on other
    connections see the records at their next read (≤ 1 s)."""


@dataclass(frozen=True)
class Dialect:
    """``translate``: driver error → tidings error. ``wrap``: a caller's own
    connection → one that runs our (SQLite-dialect) statements.
    ``notify_in``: send a wake-up that is delivered iff the caller's
    transaction commits."""

    name: str
    translate: Callable[[BaseException], BaseException] = translate_sqlite
    wrap: Callable[[Any], Any] = _same
    notify_in: Callable[[Any, str], None] = _no_notify


SQLITE = Dialect("sqlite")
