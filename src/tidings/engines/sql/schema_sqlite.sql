-- tidings SQLite schema, version 1.
CREATE TABLE IF NOT EXISTS tidings_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO tidings_meta VALUES ('format', 'tidings'), ('schema_version', '1');

CREATE TABLE IF NOT EXISTS topics (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: cached ids stay unambiguous
    name    TEXT NOT NULL UNIQUE,
    config  TEXT NOT NULL                       -- TopicConfig as JSON
);

CREATE TABLE IF NOT EXISTS partitions (
    topic_id     INTEGER NOT NULL,
    partition    INTEGER NOT NULL,
    first_offset INTEGER NOT NULL DEFAULT 0,
    next_offset  INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    last_ts      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;

-- One row per stored record batch (see recordbatch.py). Reads seek by
-- (topic_id, partition, last_offset): cost stays flat as the backlog grows.
CREATE TABLE IF NOT EXISTS batches (
    id          INTEGER PRIMARY KEY,
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    crc         INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    payload     BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_offset ON batches (topic_id, partition, last_offset);
CREATE INDEX IF NOT EXISTS batches_by_time ON batches (topic_id, partition, ts);

CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, state TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS offsets (
    group_name TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   INTEGER NOT NULL,
    committed  INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, partition)
) WITHOUT ROWID
