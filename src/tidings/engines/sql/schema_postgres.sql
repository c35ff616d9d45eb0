-- tidings PostgreSQL schema, version 1 (same tables as schema_sqlite.sql).
CREATE TABLE IF NOT EXISTS tidings_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO tidings_meta VALUES ('format', 'tidings'), ('schema_version', '1')
    ON CONFLICT (key) DO NOTHING;

CREATE TABLE IF NOT EXISTS topics (
    id      BIGSERIAL PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    config  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS partitions (
    topic_id     BIGINT NOT NULL,
    partition    INTEGER NOT NULL,
    first_offset BIGINT NOT NULL DEFAULT 0,
    next_offset  BIGINT NOT NULL DEFAULT 0,
    bytes        BIGINT NOT NULL DEFAULT 0,
    last_ts      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
);

-- One row per stored record batch. The partition row is locked (UPDATE)
-- by every append until its transaction ends, so offsets are handed out in
-- commit order per partition: no commit-order gaps (L2).
CREATE TABLE IF NOT EXISTS batches (
    id          BIGSERIAL PRIMARY KEY,
    topic_id    BIGINT NOT NULL,
    partition   INTEGER NOT NULL,
    base_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    count       INTEGER NOT NULL,
    ts          BIGINT NOT NULL,
    crc         BIGINT NOT NULL,
    size        INTEGER NOT NULL,
    payload     BYTEA NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_by_offset ON batches (topic_id, partition, last_offset);
CREATE INDEX IF NOT EXISTS batches_by_time ON batches (topic_id, partition, ts);  -- dropped in version 5

CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, state TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS offsets (
    group_name TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   BIGINT NOT NULL,
    committed  BIGINT NOT NULL,
    PRIMARY KEY (group_name, topic, partition)
);

CREATE TABLE IF NOT EXISTS queues (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    config        TEXT NOT NULL,
    next_id       BIGINT NOT NULL DEFAULT 1,
    size          BIGINT NOT NULL DEFAULT 0,
    dead_lettered BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS messages (
    queue_id       BIGINT NOT NULL,
    id             BIGINT NOT NULL,
    visible_at     BIGINT NOT NULL,
    leased         INTEGER NOT NULL DEFAULT 0,
    receipt        TEXT,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    group_key      TEXT,
    expires_at     BIGINT,
    enqueued_at    BIGINT NOT NULL,
    headers        TEXT NOT NULL,
    body           BYTEA NOT NULL,
    PRIMARY KEY (queue_id, id)
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue_id, visible_at, id);
CREATE INDEX IF NOT EXISTS messages_group ON messages (queue_id, group_key, id)
    WHERE group_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS dedup (
    queue_id   BIGINT NOT NULL,
    idem_key   TEXT NOT NULL,
    message_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (queue_id, idem_key)
);

CREATE TABLE IF NOT EXISTS exchanges (name TEXT PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bindings (
    exchange TEXT NOT NULL,
    queue    TEXT NOT NULL,
    key      TEXT NOT NULL,
    weight   INTEGER NOT NULL,
    PRIMARY KEY (exchange, queue, key)
);
-- Expired idempotency keys are deleted by index range as keyed publishes come.
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (queue_id, expires_at);
