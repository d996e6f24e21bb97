//! PostgresStore schema versions: a schema written by schema version 1 (the store before the
//! event envelope) is migrated once on build and reads back what version 1 wrote, and a schema
//! newer than the store is refused. Built only with the `postgres` feature; needs a server at
//! `ES_PG_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_common;

use chrono::{DateTime, Utc};
use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError,
    StreamId,
};
use es_stores::PostgresStore;
use postgres_common::{SchemaGuard, pg_url, pool, shared, unique_schema};
use serde_json::json;
use sqlx::{Executor, PgPool};

/// Version 1's migration log, as version 1 creates it.
const V1_MIGRATION_LOG: &str = "CREATE SCHEMA IF NOT EXISTS {schema};
     CREATE TABLE IF NOT EXISTS {schema}.es_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
     );";

/// Version 1's schema: the shipped migration, which is never edited.
const V1_SCHEMA: &str = include_str!("../src/postgres/migrations/0001_init.sql");

/// Version 1's append statement, verbatim (`es-stores/src/postgres/sql.rs` before the
/// envelope): `$1`..`$4` per request, `$5`..`$10` per event.
const V1_APPEND: &str = "WITH req AS (
            SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::int8[])
                AS r(idx, stream_type, stream_id, expected)
        ), head AS MATERIALIZED (
            SELECT r.idx, r.stream_type, r.stream_id, r.expected,
                   COALESCE((SELECT e.sequence FROM {schema}.events e
                             WHERE e.stream_type = r.stream_type AND e.stream_id = r.stream_id
                             ORDER BY e.sequence DESC LIMIT 1), 0) AS version
            FROM req r
        ), ins AS (
            INSERT INTO {schema}.events (position, stream_type, stream_id, sequence, event_type,
                                 event_version, metadata, payload)
            SELECT (pg_current_xact_id()::text::int8 << 16) + v.n, h.stream_type, h.stream_id,
                   h.version + v.ord, v.event_type, v.event_version, v.metadata::jsonb, v.payload
            FROM UNNEST($5::int4[], $6::int4[], $7::text[], $8::int8[], $9::text[], $10::bytea[])
                 WITH ORDINALITY AS v(idx, ord, event_type, event_version, metadata, payload, n)
            JOIN head h ON h.idx = v.idx
            WHERE h.expected < 0 OR h.expected = h.version
            RETURNING stream_type, stream_id, position, sequence, recorded_at
        )
        SELECT h.idx, h.version, i.position, i.sequence, i.recorded_at
        FROM head h
        LEFT JOIN ins i ON i.stream_type = h.stream_type AND i.stream_id = h.stream_id
        ORDER BY h.idx, i.sequence";

fn fill(statement: &str, schema: &str) -> String {
    statement.replace("{schema}", &format!("\"{schema}\""))
}

/// A fresh schema name with its guard (dropped with the test).
async fn fresh_schema(prefix: &str) -> (String, SchemaGuard, PgPool) {
    let url = pg_url().await;
    let schema = unique_schema(prefix);
    let guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
        isolation: Some(shared().await),
    };
    let pool = pool(&url, 8).await;
    (schema, guard, pool)
}

/// Creates `schema` at version 1, as version 1's migration did (one transaction).
async fn create_v1_schema(pool: &PgPool, schema: &str) {
    let mut tx = pool.begin().await.unwrap();
    (&mut *tx)
        .execute(sqlx::raw_sql(&fill(V1_MIGRATION_LOG, schema)))
        .await
        .unwrap();
    (&mut *tx)
        .execute(sqlx::raw_sql(&fill(V1_SCHEMA, schema)))
        .await
        .unwrap();
    sqlx::query(&fill(
        "INSERT INTO {schema}.es_migrations (version, name) VALUES ($1, $2)",
        schema,
    ))
    .bind(1_i32)
    .bind("events, snapshots and checkpoints")
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// One event as version 1 wrote it: stream, type, version, metadata (a JSON object of strings)
/// and payload.
struct V1Event {
    stream: StreamId,
    event_type: &'static str,
    version: i64,
    metadata: &'static str,
    payload: Vec<u8>,
}

/// A row of version 1's append answer: request index, version before, position, sequence,
/// recorded_at.
type V1AppendRow = (i32, i64, Option<i64>, Option<i64>, Option<DateTime<Utc>>);

/// Appends `events` (one request per stream, streams new) with version 1's statement; returns
/// `(position, recorded_at)` of each, in order.
async fn v1_append(pool: &PgPool, schema: &str, events: &[V1Event]) -> Vec<(i64, DateTime<Utc>)> {
    let mut streams: Vec<&StreamId> = Vec::new();
    for e in events {
        if !streams.contains(&&e.stream) {
            streams.push(&e.stream);
        }
    }
    let idx = |s: &StreamId| streams.iter().position(|t| *t == s).unwrap() as i32;
    let mut ord = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let before = events[..i].iter().filter(|p| p.stream == e.stream).count();
        ord.push(before as i32 + 1);
    }
    // The rows come back ordered by request then sequence: in `events`' order only when each
    // stream's events are contiguous, which the callers keep.
    let rows: Vec<V1AppendRow> = sqlx::query_as(&fill(V1_APPEND, schema))
        .bind((0..streams.len() as i32).collect::<Vec<_>>())
        .bind(
            streams
                .iter()
                .map(|s| s.aggregate_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            streams
                .iter()
                .map(|s| s.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(vec![0_i64; streams.len()])
        .bind(events.iter().map(|e| idx(&e.stream)).collect::<Vec<_>>())
        .bind(ord)
        .bind(events.iter().map(|e| e.event_type).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.version).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.metadata).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), events.len(), "every event written");
    rows.into_iter()
        .map(|(_, _, position, _, at)| (position.unwrap(), at.unwrap()))
        .collect()
}

/// Waits (at most 30 s) until `store`'s readers see `position`.
async fn wait_readable(store: &PostgresStore, position: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.head_position().await.unwrap() < position {
        assert!(
            std::time::Instant::now() < deadline,
            "position {position} never became readable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn migrations(pool: &PgPool, schema: &str) -> Vec<(i32, DateTime<Utc>)> {
    sqlx::query_as(&fill(
        "SELECT version, applied_at FROM {schema}.es_migrations ORDER BY version",
        schema,
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A schema written by version 1 (rows, a snapshot and a checkpoint included) is migrated to
/// the latest version by the first build and only by it; its rows read back as version 1 wrote them (no
/// ids, no tags, string metadata, their timestamps), and new appends keep the whole envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_migrated_once_and_reads_back() {
    let (schema, _guard, pool) = fresh_schema("upgrade").await;
    create_v1_schema(&pool, &schema).await;
    let a = StreamId::new("bank_account", "acc-1");
    let b = StreamId::new("order", "o-é/1");
    let old = [
        V1Event {
            stream: a.clone(),
            event_type: "Opened",
            version: 1,
            metadata: r#"{"correlation_id":"c-1","user":"ada"}"#,
            payload: br#"{"owner":"Ada"}"#.to_vec(),
        },
        V1Event {
            stream: a.clone(),
            event_type: "Deposited",
            version: 2,
            metadata: "{}",
            payload: br#"{"amount":100}"#.to_vec(),
        },
        V1Event {
            stream: b.clone(),
            event_type: "Blob",
            version: 1,
            metadata: r#"{"content-type":"application/octet-stream"}"#,
            payload: vec![0, 159, 146, 150, 255],
        },
    ];
    let written = v1_append(&pool, &schema, &old).await;
    let snapshot_at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
    sqlx::query(&fill(
        "INSERT INTO {schema}.snapshots (stream_type, stream_id, version, state, taken_at, \
         taken_at_ns) VALUES ($1, $2, 2, $3, $4, 789)",
        &schema,
    ))
    .bind(&a.aggregate_type)
    .bind(&a.aggregate_id)
    .bind(br#"{"balance":100}"#.to_vec())
    .bind(DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&fill(
        "INSERT INTO {schema}.checkpoints (name, position, state) VALUES ('balances', $1, $2)",
        &schema,
    ))
    .bind(written[2].0)
    .bind(br#"{"total":100}"#.to_vec())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(migrations(&pool, &schema).await.len(), 1);

    // The first build migrates.
    let store = PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .build()
        .await
        .expect("a version 1 schema opens");
    let applied = migrations(&pool, &schema).await;
    assert_eq!(
        applied.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "migrated to the latest version"
    );

    // Readers see a position once every older transaction on the server has ended.
    wait_readable(&store, written[2].0 as u64).await;
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    for ((got, want), (position, at)) in all.iter().zip(&old).zip(&written) {
        assert_eq!(got.position, *position as u64);
        assert_eq!(got.stream, want.stream);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(i64::from(got.event_version), want.version);
        assert_eq!(got.timestamp, *at, "version 1's timestamp");
        assert_eq!(got.payload, want.payload);
        assert_eq!(got.command_id, None);
        assert_eq!(got.correlation_id, None);
        assert_eq!(got.causation_id, None);
        assert!(got.tags.is_empty());
        let metadata: serde_json::Value = serde_json::from_str(want.metadata).unwrap();
        assert_eq!(serde_json::to_value(&got.metadata).unwrap(), metadata);
    }
    assert_eq!(all[0].metadata["user"], json!("ada"));
    assert_eq!(store.read_stream(&a, 1, 10).await.unwrap(), all[..2]);
    assert_eq!(store.stream_version(&b).await.unwrap(), 1);
    assert_eq!(
        SnapshotStore::load_latest(&store, &a).await.unwrap(),
        Some(Snapshot {
            stream: a.clone(),
            version: 2,
            state: br#"{"balance":100}"#.to_vec(),
            timestamp: snapshot_at,
        })
    );
    let checkpoint = CheckpointStore::load(&store, "balances")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.position, written[2].0 as u64);

    // A second build (another node, a restart) finds the work done.
    let again = PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .build()
        .await
        .unwrap();
    again.migrate().await.unwrap();
    assert_eq!(migrations(&pool, &schema).await, applied, "migrated once");
    PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .migrate(false)
        .build()
        .await
        .expect("the migrated schema is current");

    // New appends to the old stream keep the whole envelope, next to the old rows.
    let at = DateTime::from_timestamp(1_600_000_000, 987_654_321).unwrap();
    let new = vec![
        NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())
            .command_id("cmd-1")
            .correlation_id("order-42")
            .causation_id("cmd-1")
            .tag("vip")
            .tag("eu")
            .metadata("attempt", 3)
            .metadata("caller", json!({"user": "ann", "ratio": 0.1}))
            .timestamp(at),
        NewEvent::new("Withdrawn", br#"{"amount":1}"#.to_vec()),
    ];
    let done = again
        .append(&a, ExpectedVersion::Exact(2), new.clone())
        .await
        .unwrap();
    assert_eq!(done.version, 4);
    drop((store, again));
    let reopened = PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .build()
        .await
        .unwrap();
    let stream = reopened.read_stream(&a, 1, 10).await.unwrap();
    assert_eq!(stream[..2], all[..2], "old rows unchanged");
    assert_eq!(stream[2..], done.events[..], "new rows as appended");
    assert_eq!(stream[2].timestamp, at, "nanoseconds kept");
    assert_eq!(stream[2].tags, ["vip", "eu"]);
    assert_eq!(stream[2].causation_id.as_deref(), Some("cmd-1"));
    assert_eq!(stream[2].metadata["caller"]["ratio"], json!(0.1));
    assert_eq!(stream[3].command_id, None);

    // The envelope is in columns, queryable, and indexed.
    let rows: Vec<(Option<String>, Option<String>, Vec<String>)> = sqlx::query_as(&fill(
        "SELECT command_id, correlation_id, tags FROM {schema}.events ORDER BY position",
        &schema,
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows[..3].iter().all(|r| r == &(None, None, Vec::new())));
    assert_eq!(
        rows[3],
        (
            Some("cmd-1".to_owned()),
            Some("order-42".to_owned()),
            vec!["vip".to_owned(), "eu".to_owned()]
        )
    );
    let indexes: Vec<(String,)> = sqlx::query_as(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 \
         AND indexname IN ('events_correlation_id', 'events_command_id') ORDER BY indexname",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            ("events_command_id".to_owned(),),
            ("events_correlation_id".to_owned(),)
        ]
    );
}

/// A schema one version newer than the store (or far newer) is refused, whether the store
/// migrates or not, and nothing is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let (schema, _guard, pool) = fresh_schema("newer").await;
    drop(
        PostgresStore::builder(pool.clone())
            .schema(schema.clone())
            .build()
            .await
            .unwrap(),
    );
    let current = migrations(&pool, &schema).await;
    let latest = current.last().unwrap().0;
    assert_eq!(latest, 4, "this store's schema version");
    sqlx::query(&fill(
        "INSERT INTO {schema}.es_migrations (version, name) VALUES ($1, 'from the future')",
        &schema,
    ))
    .bind(latest + 1)
    .execute(&pool)
    .await
    .unwrap();
    for migrate in [true, false] {
        match PostgresStore::builder(pool.clone())
            .schema(schema.clone())
            .migrate(migrate)
            .build()
            .await
        {
            Err(StoreError::Incompatible(message)) => {
                assert!(
                    message.contains("version 5"),
                    "names the version: {message}"
                );
            }
            other => panic!("migrate({migrate}): expected Incompatible, got {other:?}"),
        }
    }
    assert_eq!(migrations(&pool, &schema).await.len(), current.len() + 1);
}
