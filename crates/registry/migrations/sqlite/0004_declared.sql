-- Instances of the config file's [[plugins]], as the store last saw them:
-- whether their place has had them before (Install ran) and at which
-- version (a new one runs Upgrade). Not part of the registry version.
CREATE TABLE declared_instances (
    id          TEXT    PRIMARY KEY,
    app_id      TEXT    NOT NULL,
    team        TEXT,
    version     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    first_at    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
