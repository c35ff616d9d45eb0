"""PostgreSQL's text forms for bulk parameters, built in C-level passes.

psycopg adapts a Python list to an array, and ``Copy.write_row`` formats a
row, with a Python-level call per element or row: for a call spread over
1,000 partitions that was ~8 ms of a 28 ms append (measured, psycopg 3.3
with its C implementation). An array's or a COPY row's text form built with
``str.join`` over ``map`` costs a few hundred µs for the same data.

Only ints and bytes (``bytea``): the values our bulk statements carry.
Plain module, no driver import: the write path shared with SQLite uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


def int_array(values: Iterable[int]) -> str:
    """An array literal, ``{1,2,3}``: cast it in SQL (``?::int[]``)."""
    return "{" + ",".join(map(str, values)) + "}"


def copy_text(columns: Sequence[Sequence[int] | Sequence[bytes]]) -> bytes:
    """``COPY … FROM STDIN`` data (text format) for rows given column by
    column, all of a column's values ints or all bytes. A bytes value is
    written as ``\\x`` and its hex digits, the backslash doubled as COPY's
    escaping asks; ints and hex need no other escaping."""
    rows = zip(*map(_texts, columns))
    return ("\n".join(map("\t".join, rows)) + "\n").encode("ascii") if columns[0] else b""


def _texts(column: Sequence[int] | Sequence[bytes]) -> Iterator[str]:
    if column and isinstance(column[0], bytes):
        return map("\\\\x".__add__, map(bytes.hex, column))  # type: ignore[arg-type]
    return map(str, column)
