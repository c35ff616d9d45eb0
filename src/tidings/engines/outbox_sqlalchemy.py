"""Outbox writes through a SQLAlchemy 2 ``Session`` / ``Connection`` (and
their asyncio twins): the statement joins the session's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

Row = tuple[Any, ...]


def _dialect(conn: Any) -> str:
    dialect = getattr(conn, "dialect", None)
    if dialect is None:  # a Session: its bind (Engine or Connection) knows
        dialect = conn.get_bind().dialect
    name: str = dialect.name
    return name


def _statement(conn: Any, sql: Mapping[str, str]) -> Any:
    dialect = _dialect(conn)
    if dialect not in sql:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"the outbox supports sqlite and postgresql, not {dialect}")
    return text(sql[dialect])


def first(conn: Any, sql: Mapping[str, str], params: Mapping[str, Any]) -> Row | None:
    """The first row of one statement run in the session's transaction."""
    row = conn.execute(_statement(conn, sql), dict(params)).first()
    return None if row is None else tuple(row)


async def first_async(conn: Any, sql: Mapping[str, str], params: Mapping[str, Any]) -> Row | None:
    """:func:`first` for ``AsyncSession`` / ``AsyncConnection``."""
    result = await conn.execute(_statement(conn, sql), dict(params))
    row = result.first()
    return None if row is None else tuple(row)
