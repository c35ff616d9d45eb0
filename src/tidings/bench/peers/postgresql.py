"""PostgreSQL through psycopg 3: the tables a team would write by hand.

Log: ``COPY`` a batch into an append-only table (one commit per batch,
``synchronous_commit`` on = fsync), read by id range and commit the
consumer's position in the same transaction.
Queue: ``COPY`` in; claim a batch with ``FOR UPDATE SKIP LOCKED`` setting a
lease (one commit), then ack by deleting it (a second commit).
"""

from __future__ import annotations

from typing import Any

import psycopg

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


class _Table:
    def __init__(self, name: str, ddl: str) -> None:
        self.conn: Any = psycopg.connect(DSN)
        self.name = name
        with self.conn.transaction():
            self.conn.execute(ddl.format(t=name))

    def append(self, values: list[bytes]) -> None:
        sql = f"COPY {self.name} (body) FROM STDIN"
        with self.conn.transaction(), self.conn.cursor() as cur, cur.copy(sql) as copy:
            for v in values:
                copy.write_row((v,))

    def close(self) -> None:
        try:
            with self.conn.transaction():
                self.conn.execute(f"DROP TABLE IF EXISTS {self.name}, {self.name}_pos")
        finally:
            self.conn.close()


LOG_DDL = """
CREATE TABLE {t} (id bigserial PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE {t}_pos (grp text PRIMARY KEY, pos bigint NOT NULL);
INSERT INTO {t}_pos VALUES ('bench', 0);
"""

QUEUE_DDL = """
CREATE TABLE {t} (id bigserial PRIMARY KEY, body bytea NOT NULL, leased_until timestamptz);
"""


class PgLog(_Table):
    def __init__(self, name: str) -> None:
        super().__init__(name, LOG_DDL)
        self.pos = 0

    def consume(self, max_records: int) -> int:
        with self.conn.transaction():
            rows = self.conn.execute(
                f"SELECT id, body FROM {self.name} WHERE id > %s ORDER BY id LIMIT %s",
                (self.pos, max_records),
            ).fetchall()
            if rows:
                self.pos = rows[-1][0]
                self.conn.execute(
                    f"UPDATE {self.name}_pos SET pos = %s WHERE grp = 'bench'", (self.pos,)
                )
        return len(rows)


class PgQueue(_Table):
    def __init__(self, name: str) -> None:
        super().__init__(name, QUEUE_DDL)

    def consume(self, max_records: int) -> int:
        with self.conn.transaction():
            rows = self.conn.execute(
                f"""UPDATE {self.name} SET leased_until = now() + interval '30 seconds'
                WHERE id IN (SELECT id FROM {self.name}
                    WHERE leased_until IS NULL OR leased_until < now()
                    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING id, body""",
                (max_records,),
            ).fetchall()
        ids = [r[0] for r in rows]
        with self.conn.transaction():
            self.conn.execute(f"DELETE FROM {self.name} WHERE id = ANY(%s)", (ids,))
        return len(ids)


def open_log(name: str) -> PgLog:
    return PgLog(name)


def open_queue(name: str) -> PgQueue:
    return PgQueue(name)
