"""Giving an SQLite file's free space back to the operating system.

Deleted rows leave free pages that SQLite reuses but never returns: a
drained 256 MB queue would keep a 286 MB file. New files are created with
``auto_vacuum=INCREMENTAL`` (see ``database.connect``), and every
maintenance round moves free pages to the end of the file and truncates
them (``PRAGMA incremental_vacuum``), a page of work per transaction so no
writer waits long, until at most ``KEEP_FREE_PAGES`` remain free: a file
that fills and drains all the time keeps that much to reuse.

Files created before (``auto_vacuum=NONE``) can only switch with a full
``VACUUM``, which holds the write lock while it copies the live data: it is
done by the first maintenance round that finds at most ``MIGRATE_LIVE_BYTES``
of live data (a drained queue, say); larger files keep growing as before
until they shrink below it.
"""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger("tidings.maintenance")

KEEP_FREE_PAGES = 1024  # 4 MiB with the default 4 KiB pages
PAGES_PER_TRANSACTION = 1024
ROUND_BUDGET_S = 1.0  # at most this long per round; the rest waits for the next
MIGRATE_LIVE_BYTES = 64 << 20
_NONE, _INCREMENTAL = 0, 2


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute(f"PRAGMA {name}").fetchone()[0])


def reclaim(conn: sqlite3.Connection) -> int:
    """One maintenance round's worth of returning free pages; returns how
    many pages the file shrank by. ``conn`` is a connection of its own,
    outside any transaction (VACUUM cannot run inside one)."""
    mode = _pragma(conn, "auto_vacuum")
    before = _pragma(conn, "page_count")
    if mode == _NONE:
        _migrate(conn, before)
    elif mode == _INCREMENTAL:
        _incremental(conn)
    else:
        return 0  # FULL: SQLite shrinks the file at every commit itself
    # Truncation reaches the file when the WAL is checkpointed: do it now.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return before - _pragma(conn, "page_count")


def _incremental(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + ROUND_BUDGET_S
    while _pragma(conn, "freelist_count") > KEEP_FREE_PAGES and time.monotonic() < deadline:
        # executescript steps the pragma to its end; execute() frees one page.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({PAGES_PER_TRANSACTION}); COMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _migrate(conn: sqlite3.Connection, pages: int) -> None:
    live = (pages - _pragma(conn, "freelist_count")) * _pragma(conn, "page_size")
    if _pragma(conn, "freelist_count") <= KEEP_FREE_PAGES or live > MIGRATE_LIVE_BYTES:
        return
    log.info("switching to auto_vacuum=INCREMENTAL (one VACUUM of %d live bytes)", live)
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("VACUUM")
