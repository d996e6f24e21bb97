//! Every SQL statement the store runs, one documented constant each.
//!
//! `{schema}` in a statement stands for the store's schema name, double-quoted; [`fill`] puts it
//! in (the name has been checked to be a plain lower-case identifier, so quoting it is enough).
//! [`Queries`] holds the statements the store runs after it is built, filled in once.
//!
//! Positions and the gap problem are explained on [`PostgresStore`](super::PostgresStore): a
//! reader only sees positions below `readable_bound!()`, the oldest running transaction's id
//! shifted left by 16.

/// The upper bound (exclusive) of readable positions: every transaction below the snapshot's
/// xmin has finished, so everything below `xmin << 16` that will ever be visible already is.
macro_rules! readable_bound {
    () => {
        "(pg_snapshot_xmin(pg_current_snapshot())::text::int8 << 16)"
    };
}

/// The columns of an event row, in the order `read::decode_event` takes them.
macro_rules! event_columns {
    () => {
        "position, stream_type, stream_id, sequence, event_type, event_version, recorded_at, \
         metadata::text, payload, recorded_at_ns, command_id, correlation_id, causation_id, tags"
    };
}

/// Puts the quoted schema name in place of `{schema}` in `statement`.
pub(super) fn fill(statement: &str, schema: &str) -> String {
    statement.replace("{schema}", &format!("\"{schema}\""))
}

// --- Events -------------------------------------------------------------------------------

/// The group-commit append: one statement (one round trip, one transaction) for a whole batch
/// of append requests.
///
/// Inputs, per request: `$1` index (0..), `$2` stream type, `$3` stream id, `$4` expected version
/// (-1: any, 0: no stream); per event: `$5` its request's index, `$6` its 1-based index within
/// the request, `$7` type, `$8` schema version, `$9` metadata (JSON object text, null for none),
/// `$10` payload, `$11` command id, `$12` correlation id, `$13` causation id (each nullable),
/// `$14`..`$15` the bounds (1-based, inclusive; empty when `$15 < $14`) of its tags in `$18`,
/// `$16` its timestamp truncated to microseconds (null: the transaction's time), `$17` the
/// nanoseconds below them; `$18` every event's tags, one after the other.
///
/// Several requests may name one stream, if they form a *chain* (the lane only batches such):
/// each expects an exact version (0 for no stream) and each after the first expects the version
/// the one before it leaves (its expected version plus its event count); a request expecting any
/// version is alone on its stream. The requests are decided as if run one after another: with
/// the stream at version `v` before the statement, a chain's requests before the one expecting
/// `v` fail (the stream is at `v`), that one and the rest are written, each at the sequences
/// after its expected version. A request expecting any version is written after `v`.
///
/// Events are inserted at positions `(xid8 << 16) + n`, `n` the event's 1-based index in the
/// whole statement (so in request order; an event's request is `$5[n]`). Output, in no
/// particular order: for a request whose expectation failed, one row with its index, the
/// stream's version and null position, sequence and time; for each written event one row with
/// index -1 and version 0 (its request is `$5[position & 65535]`, the caller knows it),
/// its position, sequence, the transaction's time and whether the transaction was *alone*: the
/// oldest transaction running when the statement took its snapshot would be this one (no
/// transaction was running then, and no other got an id before this one), so no older
/// transaction can still hold readers back once this one commits: its events are readable at
/// once. (Computing the request of each row on the server cost a sub-query per event.) A concurrent writer of the same sequence makes the statement fail with a
/// unique violation (the caller runs it again).
pub(super) const APPEND: &str = "WITH req AS (
            SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::int8[])
                AS r(idx, stream_type, stream_id, expected)
        ), head AS MATERIALIZED (
            SELECT r.idx, r.stream_type, r.stream_id, r.expected,
                   COALESCE((SELECT e.sequence FROM {schema}.events e
                             WHERE e.stream_type = r.stream_type AND e.stream_id = r.stream_id
                             ORDER BY e.sequence DESC LIMIT 1), 0) AS version
            FROM req r
        ), dec AS MATERIALIZED (
            SELECT h.idx, h.version,
                   h.expected < 0 OR bool_or(h.expected = h.version)
                       OVER (PARTITION BY h.stream_type, h.stream_id ORDER BY h.idx) AS ok,
                   CASE WHEN h.expected < 0 THEN h.version ELSE h.expected END AS base
            FROM head h
        ), arr AS MATERIALIZED (
            SELECT array_agg(d.ok ORDER BY d.idx) AS ok, array_agg(d.base ORDER BY d.idx) AS base
            FROM dec d
        ), ins AS (
            INSERT INTO {schema}.events (position, stream_type, stream_id, sequence, event_type,
                                 event_version, metadata, payload, command_id, correlation_id,
                                 causation_id, tags, recorded_at, recorded_at_ns)
            SELECT (pg_current_xact_id()::text::int8 << 16) + v.n, v.stream_type, v.stream_id,
                   a.base[v.idx + 1] + v.ord, v.event_type, v.event_version,
                   COALESCE(v.metadata::jsonb, '{}'::jsonb), v.payload, v.command_id,
                   v.correlation_id, v.causation_id, ($18::text[])[v.tag_from:v.tag_to],
                   COALESCE(v.recorded_at, now()), v.recorded_at_ns
            FROM UNNEST($5::int4[], $6::int4[], $7::text[], $8::int8[], $9::text[], $10::bytea[],
                        $11::text[], $12::text[], $13::text[], $14::int4[], $15::int4[],
                        $16::timestamptz[], $17::int4[], $19::text[], $20::text[])
                 WITH ORDINALITY AS v(idx, ord, event_type, event_version, metadata, payload,
                                      command_id, correlation_id, causation_id, tag_from, tag_to,
                                      recorded_at, recorded_at_ns, stream_type, stream_id, n)
            CROSS JOIN arr a
            WHERE a.ok[v.idx + 1]
            RETURNING position, sequence, now() AS store_time,
                      pg_snapshot_xmin(pg_current_snapshot())::text::int8 = (position >> 16)
                          AS alone
        )
        SELECT d.idx, d.version, NULL::int8 AS position, NULL::int8 AS sequence,
               NULL::timestamptz AS store_time, NULL::bool AS alone
        FROM dec d WHERE NOT d.ok
        UNION ALL
        SELECT -1, 0, i.position, i.sequence, i.store_time, i.alone FROM ins i";

/// The first statement of a bulk append's transaction (see `bulk`): the transaction's id (which
/// it assigns: the events' positions are `(xid8 << 16) + n`), its time (the timestamp of the
/// events that carry none, as `now()` in [`APPEND`]), and the version of each stream `$1[i]`,
/// `$2[i]` (0 when empty), in the order given.
pub(super) const BULK_HEADS: &str = "SELECT pg_current_xact_id()::text::int8, now(),
            ARRAY(SELECT COALESCE((SELECT e.sequence FROM {schema}.events e
                                   WHERE e.stream_type = r.stream_type
                                     AND e.stream_id = r.stream_id
                                   ORDER BY e.sequence DESC LIMIT 1), 0)
                  FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS r(stream_type, stream_id, n)
                  ORDER BY r.n)";

/// The second statement of a bulk append's transaction: the events, in PostgreSQL's binary
/// `COPY` format (built by `bulk::CopyRows`, columns in this order).
pub(super) const COPY_EVENTS: &str = "COPY {schema}.events (position, stream_type, stream_id, \
     sequence, event_type, event_version, metadata, payload, command_id, correlation_id, \
     causation_id, tags, recorded_at, recorded_at_ns) FROM STDIN (FORMAT binary)";

/// The readable global log from position `$1`, at most `$2` events.
///
/// The page is taken by position first (`LIMIT` over `position >= $1` alone) and cut at the
/// readable bound after, computed once: it holds the same rows as asking for both bounds at
/// once, but the planner cannot misjudge the range. With both bounds in one condition and no
/// statistics on the table yet (a log just written, before autovacuum's first analyze), it
/// estimates a range of a few thousand rows, reads every row from `$1` to the end through a
/// bitmap scan and sorts them: a page of a million-row log then took 300 ms instead of 3.
pub(super) const READ_ALL: &str = concat!(
    "SELECT page.* FROM (SELECT ",
    event_columns!(),
    " FROM {schema}.events WHERE position >= $1 ORDER BY position LIMIT $2) page \
     WHERE page.position < (SELECT ",
    readable_bound!(),
    ") ORDER BY page.position"
);

/// The heads of the readable global log from position `$1`, at most `$2` events: position,
/// stream type and event type, without the payloads (what a filtered read decides on). Cut at
/// the readable bound after the limit, as [`READ_ALL`] is.
pub(super) const READ_ALL_HEADS: &str = concat!(
    "SELECT page.* FROM (SELECT position, stream_type, event_type FROM {schema}.events \
     WHERE position >= $1 ORDER BY position LIMIT $2) page WHERE page.position < (SELECT ",
    readable_bound!(),
    ") ORDER BY page.position"
);

/// The events at positions `$1` (an array), in position order.
pub(super) const READ_AT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM {schema}.events WHERE position = ANY($1::int8[]) ORDER BY position"
);

/// A stream's version (its highest sequence, 0 when empty): `$1` stream type, `$2` stream id.
pub(super) const STREAM_VERSION: &str = "SELECT COALESCE(MAX(sequence), 0) FROM {schema}.events \
                                         WHERE stream_type = $1 AND stream_id = $2";

/// The readable head: the highest readable position, 0 when none.
pub(super) const HEAD: &str = concat!(
    "SELECT COALESCE(MAX(position), 0) FROM {schema}.events WHERE position < ",
    readable_bound!()
);

/// The readable head and the written head (the highest position of any committed event); the
/// refresher polls quickly while the first lags behind the second.
pub(super) const HEADS: &str = concat!(
    "SELECT COALESCE((SELECT MAX(position) FROM {schema}.events WHERE position < ",
    readable_bound!(),
    "), 0), COALESCE((SELECT MAX(position) FROM {schema}.events), 0)"
);

/// [`HEADS`], after waking other nodes' listeners: `$1` the schema's channel, `$2` this node's
/// id as the payload (its own listener skips it). One statement after a commit instead of two
/// (the answers to appends wait for the refreshed head), and outside the append transaction
/// (a `NOTIFY` inside one takes a database-wide lock at commit). The notification goes out as
/// this statement commits.
pub(super) const NOTIFY_HEADS: &str = concat!(
    "SELECT COALESCE((SELECT MAX(position) FROM {schema}.events WHERE position < ",
    readable_bound!(),
    "), 0), COALESCE((SELECT MAX(position) FROM {schema}.events), 0) \
     FROM (SELECT pg_notify($1, $2)) notified"
);

// --- Snapshots and checkpoints --------------------------------------------------------------

/// Saves (or replaces) a snapshot: `$1` stream type, `$2` stream id, `$3` version, `$4` state,
/// `$5` timestamp truncated to microseconds, `$6` the nanoseconds below them.
pub(super) const SAVE_SNAPSHOT: &str = "INSERT INTO {schema}.snapshots \
         (stream_type, stream_id, version, state, taken_at, taken_at_ns) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (stream_type, stream_id, version) DO UPDATE SET \
         state = EXCLUDED.state, taken_at = EXCLUDED.taken_at, \
         taken_at_ns = EXCLUDED.taken_at_ns";

/// Deletes all but a stream's `$3` latest snapshots: `$1` stream type, `$2` stream id.
pub(super) const PRUNE_SNAPSHOTS: &str = "DELETE FROM {schema}.snapshots \
     WHERE stream_type = $1 AND stream_id = $2 \
     AND version NOT IN (SELECT version FROM {schema}.snapshots \
         WHERE stream_type = $1 AND stream_id = $2 ORDER BY version DESC LIMIT $3)";

/// A projection's checkpoint (`position, state`): `$1` its name.
pub(super) const LOAD_CHECKPOINT: &str =
    "SELECT position, state FROM {schema}.checkpoints WHERE name = $1";

/// Saves a projection's checkpoint, position and state together: `$1` name, `$2` position, `$3`
/// state (nullable).
pub(super) const SAVE_CHECKPOINT: &str = "INSERT INTO {schema}.checkpoints (name, position, state) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
         state = EXCLUDED.state, updated_at = now()";

// --- Runner leases -------------------------------------------------------------------------

/// Takes the session advisory lock `$1` (a runner lease's key) if it is free: whether it was.
pub(super) const TRY_LEASE: &str = "SELECT pg_try_advisory_lock($1)";

/// Releases the session advisory lock `$1` (a runner lease's key).
pub(super) const RELEASE_LEASE: &str = "SELECT pg_advisory_unlock($1)";

/// The keys, among `$1` (an array of lease keys), of the runner leases some session of this
/// database holds: a session advisory lock on a `bigint` key shows in `pg_locks` with the
/// key's high half in `classid`, its low half in `objid` and `objsubid` 1.
pub(super) const LEASES_HELD: &str = "SELECT (l.classid::int8 << 32) | l.objid::int8 \
     FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND ((l.classid::int8 << 32) | l.objid::int8) = ANY($1::int8[])";

/// Checks that a lease's connection is alive.
pub(super) const PING: &str = "SELECT 1";

// --- Operator tools -------------------------------------------------------------------------

/// Whether the store's tables exist: `$1` the quoted events table (`"schema".events`); the
/// table's name, or null when it does not exist.
pub(super) const FIND_EVENTS_TABLE: &str = "SELECT to_regclass($1)::text";

/// The names of the projections that have a saved checkpoint, sorted.
pub(super) const CHECKPOINT_NAMES: &str = "SELECT name FROM {schema}.checkpoints ORDER BY name";

/// Up to `$3` streams and their versions, in `(stream type, stream id)` order from the first
/// (`$1` and `$2` are bound to equal values, as [`STREAM_HEADS_AFTER`] takes them).
pub(super) const STREAM_HEADS: &str = "SELECT stream_type, stream_id, MAX(sequence) \
     FROM {schema}.events WHERE $1 = $2 \
     GROUP BY stream_type, stream_id ORDER BY stream_type, stream_id LIMIT $3";

/// Up to `$3` streams and their versions, in `(stream type, stream id)` order after the stream
/// `$1` (type), `$2` (id).
pub(super) const STREAM_HEADS_AFTER: &str = "SELECT stream_type, stream_id, MAX(sequence) \
     FROM {schema}.events WHERE (stream_type, stream_id) > ($1, $2) \
     GROUP BY stream_type, stream_id ORDER BY stream_type, stream_id LIMIT $3";

// --- Migrations -----------------------------------------------------------------------------

/// Serializes migrators: `$1` the lock class, `$2` the schema name (hashed into the second key),
/// held until the migration transaction ends.
pub(super) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

/// Creates the schema and its migration log, if missing (several statements: run it as raw SQL).
pub(super) const CREATE_MIGRATION_LOG: &str = "CREATE SCHEMA IF NOT EXISTS {schema};
     CREATE TABLE IF NOT EXISTS {schema}.es_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
     );";

/// The schema's version: the last migration applied, 0 when none.
pub(super) const SCHEMA_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) FROM {schema}.es_migrations";

/// Records an applied migration: `$1` version, `$2` name.
pub(super) const RECORD_MIGRATION: &str =
    "INSERT INTO {schema}.es_migrations (version, name) VALUES ($1, $2)";

/// The statements a built store runs, with its schema filled in.
pub(super) struct Queries {
    /// [`APPEND`].
    pub(super) append: String,
    /// [`BULK_HEADS`].
    pub(super) bulk_heads: String,
    /// [`COPY_EVENTS`].
    pub(super) copy_events: String,
    /// [`READ_ALL`].
    pub(super) read_all: String,
    /// [`READ_ALL_HEADS`].
    pub(super) read_all_heads: String,
    /// [`READ_AT`].
    pub(super) read_at: String,
    /// [`STREAM_VERSION`].
    pub(super) stream_version: String,
    /// [`HEAD`].
    pub(super) head: String,
    /// [`HEADS`].
    pub(super) heads: String,
    /// [`NOTIFY_HEADS`].
    pub(super) notify_heads: String,
    /// [`SAVE_SNAPSHOT`].
    pub(super) save_snapshot: String,
    /// [`PRUNE_SNAPSHOTS`].
    pub(super) prune_snapshots: String,
    /// [`LOAD_CHECKPOINT`].
    pub(super) load_checkpoint: String,
    /// [`SAVE_CHECKPOINT`].
    pub(super) save_checkpoint: String,
}

impl Queries {
    /// The statements for `schema` (unquoted; checked to be a plain identifier).
    pub(super) fn new(schema: &str) -> Self {
        let fill = |statement| fill(statement, schema);
        Self {
            // One space for each run of blanks: the statement's text, as the server shows it
            // (`pg_stat_activity` keeps its first 1,024 bytes), reaches the INSERT sooner.
            append: fill(APPEND)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            bulk_heads: fill(BULK_HEADS),
            copy_events: fill(COPY_EVENTS),
            read_all: fill(READ_ALL),
            read_all_heads: fill(READ_ALL_HEADS),
            read_at: fill(READ_AT),
            stream_version: fill(STREAM_VERSION),
            head: fill(HEAD),
            heads: fill(HEADS),
            notify_heads: fill(NOTIFY_HEADS),
            save_snapshot: fill(SAVE_SNAPSHOT),
            prune_snapshots: fill(PRUNE_SNAPSHOTS),
            load_checkpoint: fill(LOAD_CHECKPOINT),
            save_checkpoint: fill(SAVE_CHECKPOINT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_filled() {
        let q = Queries::new("es");
        for s in [
            &q.append,
            &q.bulk_heads,
            &q.copy_events,
            &q.read_all,
            &q.read_all_heads,
            &q.read_at,
            &q.stream_version,
            &q.head,
            &q.heads,
            &q.notify_heads,
            &q.save_snapshot,
            &q.prune_snapshots,
            &q.load_checkpoint,
            &q.save_checkpoint,
        ] {
            assert!(!s.contains("{schema}"), "{s}");
            assert!(s.contains("\"es\"."), "{s}");
        }
        assert_eq!(
            q.read_all,
            "SELECT page.* FROM (SELECT position, stream_type, stream_id, sequence, event_type, \
             event_version, recorded_at, metadata::text, payload, recorded_at_ns, command_id, \
             correlation_id, causation_id, tags FROM \"es\".events WHERE position >= $1 \
             ORDER BY position LIMIT $2) page WHERE page.position < (SELECT \
             (pg_snapshot_xmin(pg_current_snapshot())::text::int8 << 16)) ORDER BY page.position"
        );
    }
}
