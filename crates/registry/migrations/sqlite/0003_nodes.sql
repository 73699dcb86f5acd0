-- Several gateways may share one store: a registry version bumped by every
-- registry change (each node polls it and catches up), the version of each
-- instance's latest change, and leases on events being delivered.
CREATE TABLE registry_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

ALTER TABLE instances ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE post_events ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
