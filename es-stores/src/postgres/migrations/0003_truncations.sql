-- What `EventStore::truncate_stream` removed: per stream, the sequence before which its events
-- are gone (the highest asked for) and when. `es verify` reads it to tell a removal from lost
-- events. A store migrated from version 2 starts with none.
CREATE TABLE {schema}.truncations (
    stream_type  text        NOT NULL,
    stream_id    text        NOT NULL,
    before_sequence bigint   NOT NULL CHECK (before_sequence > 1),
    truncated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_type, stream_id)
);
