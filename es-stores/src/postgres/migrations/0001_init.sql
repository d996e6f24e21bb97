-- The global log. `position` is (writing transaction's xid8 << 16) + the event's index within
-- that transaction (1..65535): readers see a prefix of it, see the module docs ("gap problem").
CREATE TABLE {schema}.events (
    position      bigint      PRIMARY KEY,
    stream_type   text        NOT NULL,
    stream_id     text        NOT NULL,
    sequence      bigint      NOT NULL CHECK (sequence > 0),
    event_type    text        NOT NULL,
    event_version bigint      NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    metadata      jsonb       NOT NULL DEFAULT '{}',
    payload       bytea       NOT NULL,
    -- Decides expected-version races: two writers of one sequence, the second one fails.
    CONSTRAINT events_stream_sequence UNIQUE (stream_type, stream_id, sequence)
);

CREATE TABLE {schema}.snapshots (
    stream_type  text        NOT NULL,
    stream_id    text        NOT NULL,
    version      bigint      NOT NULL,
    state        bytea       NOT NULL,
    -- taken_at is truncated to microseconds; taken_at_ns keeps the rest so a snapshot loads
    -- back exactly as it was saved.
    taken_at     timestamptz NOT NULL,
    taken_at_ns  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (stream_type, stream_id, version)
);

CREATE TABLE {schema}.checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    state      bytea,
    updated_at timestamptz NOT NULL DEFAULT now()
);
