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
CREATE INDEX IF NOT EXISTS batches_by_time ON batches (topic_id, partition, ts);  -- dropped in version 5

CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, state TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS offsets (
    group_name TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   INTEGER NOT NULL,
    committed  INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, partition)
) WITHOUT ROWID
;

-- Queues (Q1-Q6). Message ids are per queue, handed out from queues.next_id
-- so a batch publish reserves its ids with one UPDATE.
CREATE TABLE IF NOT EXISTS queues (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    config        TEXT NOT NULL,
    next_id       INTEGER NOT NULL DEFAULT 1,
    size          INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0
);

-- visible_at (ms) is when a message can be claimed: its delay, or the end
-- of its current lease. Claims read the (queue_id, visible_at) index range,
-- so their cost does not grow with the backlog.
CREATE TABLE IF NOT EXISTS messages (
    queue_id       INTEGER NOT NULL,
    id             INTEGER NOT NULL,
    visible_at     INTEGER NOT NULL,
    leased         INTEGER NOT NULL DEFAULT 0,
    receipt        TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    group_key      TEXT,
    expires_at     INTEGER,
    enqueued_at    INTEGER NOT NULL,
    headers        TEXT NOT NULL,
    body           BLOB NOT NULL,
    PRIMARY KEY (queue_id, id)
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue_id, visible_at, id);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue_id, group_key, id)
    WHERE group_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS dedup (
    queue_id   INTEGER NOT NULL,
    idem_key   TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue_id, idem_key)
);

CREATE TABLE IF NOT EXISTS exchanges (name TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (
    exchange TEXT NOT NULL,
    queue    TEXT NOT NULL,
    key      TEXT NOT NULL,
    weight   INTEGER NOT NULL,
    PRIMARY KEY (exchange, queue, key)
)
;
-- Expired idempotency keys are deleted by index range as keyed publishes come.
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (queue_id, expires_at)
