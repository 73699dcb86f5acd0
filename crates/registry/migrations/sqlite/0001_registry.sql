-- The plugin registry: every uploaded plugin version (its project as a
-- tar.gz) and every instance of one.
CREATE TABLE plugin_versions (
    app_id      TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    manifest    TEXT    NOT NULL,
    archive     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
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
    seq           INTEGER NOT NULL,
    installed_at  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    debug         INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (app_id, version) REFERENCES plugin_versions (app_id, version)
);

CREATE INDEX instances_app ON instances (app_id);
