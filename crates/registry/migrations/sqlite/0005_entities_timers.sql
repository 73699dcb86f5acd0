-- Entity storage (`@ones-op/sdk` storage.entity(name)): one row per record,
-- its value as JSON; created_at/updated_at in milliseconds.
CREATE TABLE entity_records (
    instance    TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (instance, entity, key)
);

-- One row per record per declared index it is in: its partition (the
-- partition attributes' values as a JSON array) and where it sorts (num for
-- boolean/integer/float attributes, txt for string ones).
CREATE TABLE entity_index (
    instance    TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    idx         TEXT    NOT NULL,
    part        TEXT    NOT NULL,
    num         DOUBLE PRECISION,
    txt         TEXT,
    key         TEXT    NOT NULL,
    PRIMARY KEY (instance, entity, idx, key)
);
CREATE INDEX entity_index_order ON entity_index (instance, entity, idx, part, num, txt, key);
-- A record's rows, to replace or delete them with it.
CREATE INDEX entity_index_key ON entity_index (instance, entity, key);

-- TimerTask abilities: when each instance's timer is due next (seconds; on
-- the schedule it was planned by), until when the node running its tick
-- holds it (milliseconds), and how the last run went.
CREATE TABLE timer_runs (
    instance     TEXT    NOT NULL,
    timer        TEXT    NOT NULL,
    schedule     TEXT    NOT NULL,
    next_at      BIGINT  NOT NULL,
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    runs         BIGINT  NOT NULL DEFAULT 0,
    failures     BIGINT  NOT NULL DEFAULT 0,
    last_at      BIGINT,
    last_ms      BIGINT,
    last_error   TEXT,
    PRIMARY KEY (instance, timer)
);
