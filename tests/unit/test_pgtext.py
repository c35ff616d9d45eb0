"""PostgreSQL's text forms for bulk parameters (``engines/sql/pgtext.py``);
the round trip through a real server is in the log contract suite."""

from __future__ import annotations

from tidings.engines.sql.pgtext import copy_text, int_array


def test_int_array_is_an_array_literal() -> None:
    assert int_array([3, -1, 0]) == "{3,-1,0}"
    assert int_array(iter([])) == "{}"


def test_copy_text_writes_one_line_per_row_and_bytea_as_escaped_hex() -> None:
    data = copy_text([[1, 22], [b"\x00\\\t", b""]])
    assert data == b"1\t\\\\x005c09\n22\t\\\\x\n"


def test_copy_text_of_no_rows_is_empty() -> None:
    assert copy_text([[], []]) == b""
