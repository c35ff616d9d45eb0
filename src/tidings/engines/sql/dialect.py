"""What differs between the SQL databases beyond statement text."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from .database import translate as translate_sqlite


@contextmanager
def _same(conn: Any) -> Iterator[Any]:
    yield conn


def _no_notify(conn: Any, channel: str) -> None:
    """SQLite has no in-transaction notification: waiters on other
    connections see the records at their next read (≤ 1 s)."""


@dataclass(frozen=True)
class Dialect:
    """``translate``: driver error → tidings error. ``borrow``: a caller's
    own connection → a context in which it runs our (SQLite-dialect)
    statements on our tables, the connection left as it was on exit.
    ``notify_in``: send a wake-up that is delivered iff the caller's
    transaction commits."""

    name: str
    translate: Callable[[BaseException], BaseException] = translate_sqlite
    borrow: Callable[[Any], AbstractContextManager[Any]] = _same
    notify_in: Callable[[Any, str], None] = _no_notify


SQLITE = Dialect("sqlite")
