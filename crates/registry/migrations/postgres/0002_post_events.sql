-- Suffix/subscribe events, written before the response completes and
-- deleted once delivered; `dead` ones wait for a replay. A node delivering
-- an event holds it until `locked_until` (ms since the epoch); after that
-- another node may take it (its holder died).
CREATE TABLE post_events (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance      TEXT    NOT NULL,
    function      TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead')),
    attempts      BIGINT  NOT NULL DEFAULT 0,
    next_at       BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL,
    locked_until  BIGINT  NOT NULL DEFAULT 0
);

CREATE INDEX post_events_queue ON post_events (state, instance, id);
