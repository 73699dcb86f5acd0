-- The plugin registry: every uploaded plugin version (its project as a
-- tar.gz) and every instance of one. `registry_version` is bumped by every
-- registry change; each gateway node polls it and catches up. `rev` is the
-- registry version of an instance's latest change.
CREATE TABLE plugin_versions (
    app_id      TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    manifest    TEXT    NOT NULL,
    archive     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (app_id, version)
);

CREATE TABLE instances (
    id            TEXT    PRIMARY KEY,
    app_id        TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    level         TEXT    NOT NULL CHECK (level IN ('team', 'organization')),
    team          TEXT,
    state         TEXT    NOT NULL CHECK (state IN ('enabled', 'disabled')),
    config        TEXT    NOT NULL DEFAULT '{}',
    seq           BIGINT  NOT NULL,
    installed_at  BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    debug         BOOLEAN NOT NULL DEFAULT FALSE,
    rev           BIGINT  NOT NULL DEFAULT 0,
    FOREIGN KEY (app_id, version) REFERENCES plugin_versions (app_id, version)
);

CREATE INDEX instances_app ON instances (app_id);

CREATE TABLE registry_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT  NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);
