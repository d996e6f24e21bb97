-- The event envelope: command, correlation and causation ids and tags in columns of their own
-- (so they can be queried), and the nanoseconds of a given timestamp below recorded_at's
-- microseconds (like snapshots.taken_at_ns). Rows written before have no ids, no tags and 0 ns.
-- Columns with constant defaults are added without rewriting the table.
ALTER TABLE {schema}.events
    ADD COLUMN command_id     text,
    ADD COLUMN correlation_id text,
    ADD COLUMN causation_id   text,
    ADD COLUMN tags           text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN recorded_at_ns integer NOT NULL DEFAULT 0;

-- Lookups by correlation id (everything one request caused) and by command id; rows without
-- one are left out of the index.
CREATE INDEX events_correlation_id ON {schema}.events (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX events_command_id ON {schema}.events (command_id)
    WHERE command_id IS NOT NULL;
