//! PostgresStore: the conformance suite and the PostgreSQL-specific behaviour (migrations, the
//! gap problem, LISTEN/NOTIFY, error mapping). Built only with the `postgres` feature; needs a
//! server at `ES_PG_URL`, and fails (naming the variable) without one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod postgres_common;

use std::collections::BTreeMap;
use std::time::Duration;

use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot, SnapshotStore,
    StoreError, StreamId,
};
use es_stores::PostgresStore;
use postgres_common::{SchemaGuard, pg_url, pool, shared, store, store_alone, unique_schema};
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

/// The conformance factory: always a store (the suite's `None`, "skip", is never used: without a
/// reachable `ES_PG_URL` the case fails).
async fn conformance_store() -> Option<(PostgresStore, SchemaGuard)> {
    Some(store("conformance").await)
}

// Positions are transaction ids shifted left: they have holes, but no reader skips an event.
es_core::store_conformance_tests!(conformance_store, gapless = false);

/// An empty append checks the version and leaves the head at the last appended position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_append_checks_the_version() {
    let (store, _guard) = store("emptyappend").await;
    let a = s("a");
    let done = store
        .append(&a, ExpectedVersion::NoStream, Vec::new())
        .await
        .unwrap();
    assert_eq!((done.version, done.events.len()), (0, 0));
    let written = store
        .append(&a, ExpectedVersion::NoStream, vec![ev(0), ev(1)])
        .await
        .unwrap();
    let done = store
        .append(&a, ExpectedVersion::Exact(2), Vec::new())
        .await
        .unwrap();
    assert_eq!((done.version, done.events.len()), (2, 0));
    assert_eq!(
        store.head_position().await.unwrap(),
        written.last_position().unwrap()
    );
    let conflict = store
        .append(&a, ExpectedVersion::Exact(7), Vec::new())
        .await;
    assert!(
        matches!(
            conflict,
            Err(StoreError::Conflict {
                expected: ExpectedVersion::Exact(7),
                actual: 2
            })
        ),
        "{conflict:?}"
    );
}

fn ev(n: u64) -> NewEvent {
    NewEvent::new("Numbered", format!("{{\"n\":{n}}}").into_bytes())
}

fn s(id: &str) -> StreamId {
    StreamId::new("test", id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_safe_concurrently() {
    let url = pg_url().await;
    let schema = unique_schema("migrate");
    let _guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
        isolation: Some(shared().await),
    };
    let pool = pool(&url, 12).await;
    // Eight nodes start at once on a fresh schema.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            PostgresStore::builder(pool).schema(schema).build().await
        }));
    }
    let mut stores = Vec::new();
    for t in tasks {
        stores.push(t.await.unwrap().expect("concurrent migration failed"));
    }
    // Again, on a migrated schema: nothing to do.
    stores[0].migrate().await.unwrap();
    let rows: Vec<(i32,)> = sqlx::query_as(&format!(
        "SELECT version FROM \"{schema}\".es_migrations ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, vec![(1,), (2,)]);
    // A store that does not migrate accepts a current schema...
    PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .migrate(false)
        .build()
        .await
        .unwrap();
    // ...refuses a missing one and a newer one.
    let missing = PostgresStore::builder(pool.clone())
        .schema(unique_schema("missing"))
        .migrate(false)
        .build()
        .await;
    assert!(
        matches!(missing, Err(StoreError::Incompatible(_))),
        "{missing:?}"
    );
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".es_migrations (version, name) VALUES (99, 'future')"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let newer = PostgresStore::builder(pool.clone())
        .schema(schema.clone())
        .build()
        .await;
    assert!(
        matches!(newer, Err(StoreError::Incompatible(_))),
        "{newer:?}"
    );
    let bad = PostgresStore::builder(pool)
        .schema("Bad\"Name")
        .build()
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_result_matches_what_is_read_back() {
    let (store, _guard) = store("roundtrip").await;
    let events = vec![
        NewEvent::new("Opened", b"{}".to_vec())
            .version(3)
            .metadata("correlation", "c-1")
            .metadata("quote", "\"\\ é"),
        NewEvent::new("Binary", vec![0, 159, 146, 150, 255]),
    ];
    let done = store
        .append(&s("rt"), ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    assert_eq!(done.version, 2);
    let read = store.read_stream(&s("rt"), 1, 10).await.unwrap();
    assert_eq!(read, done.events, "append returns exactly what is stored");
    assert_eq!(store.read_all(0, 10).await.unwrap(), done.events);
    assert_eq!(read[0].event_version, 3);
    assert_eq!(read[1].payload, vec![0, 159, 146, 150, 255]);
    // Positions carry the writing transaction: one transaction, consecutive indexes.
    assert_eq!(read[0].position >> 16, read[1].position >> 16);
    assert_eq!(read[0].position + 1, read[1].position);
    assert_eq!(read[0].position & 0xffff, 1);
}

/// Metadata numbers come back from `jsonb` exactly (floats included, which the default
/// `serde_json` parser may read one ULP off), and given timestamps keep their nanoseconds, also
/// before 1970.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_numbers_and_timestamps_round_trip_exactly() {
    let (store, _guard) = store("numbers").await;
    let mut event = NewEvent::new("Numbers", b"{}".to_vec())
        .metadata("big", u64::MAX)
        .metadata("small", i64::MIN)
        .metadata("tenth", 0.1)
        .metadata("sum", 0.1 + 0.2)
        .metadata("tiny", 5e-324)
        .metadata("huge", f64::MAX)
        .timestamp(chrono::DateTime::from_timestamp(-1, 999_999_999).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..500 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let f = f64::from_bits(x);
        if f.is_finite() {
            event = event.metadata(format!("f{i}"), f);
        }
    }
    let done = store
        .append(
            &s("numbers"),
            ExpectedVersion::NoStream,
            vec![event.clone()],
        )
        .await
        .unwrap();
    let back = store.read_stream(&s("numbers"), 1, 1).await.unwrap();
    assert_eq!(back, done.events);
    assert_eq!(back[0].timestamp, event.timestamp.unwrap());
    for (key, value) in &event.envelope.metadata {
        let got = &back[0].metadata[key];
        match value.as_f64() {
            Some(f) if value.is_f64() => assert_eq!(
                got.as_f64().map(f64::to_bits),
                Some(f.to_bits()),
                "{key}: {value} came back as {got}"
            ),
            _ => assert_eq!(got, value, "{key}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_rejected_before_writing() {
    let (store, _guard) = store("invalid").await;
    let nul = store
        .append(
            &StreamId::new("t", "a\0b"),
            ExpectedVersion::Any,
            vec![ev(1)],
        )
        .await;
    assert!(matches!(nul, Err(StoreError::InvalidInput(_))), "{nul:?}");
    let nul_meta = store
        .append(
            &s("a"),
            ExpectedVersion::Any,
            vec![ev(1).metadata("k", "v\0")],
        )
        .await;
    assert!(
        matches!(nul_meta, Err(StoreError::InvalidInput(_))),
        "{nul_meta:?}"
    );
    // Long text with a NUL: refused, quoting at most 80 bytes of it.
    let long = format!("{}\0", "x".repeat(1_000));
    assert_refused(
        "event type",
        store
            .append(
                &s("a"),
                ExpectedVersion::Any,
                vec![NewEvent::new(long.as_str(), Vec::new())],
            )
            .await,
    );
    assert_refused(
        "metadata key",
        store
            .append(
                &s("a"),
                ExpectedVersion::Any,
                vec![ev(1).metadata(long.as_str(), "v")],
            )
            .await,
    );
    assert_refused(
        "projection name",
        CheckpointStore::save(&store, &long, 1, None).await,
    );
    assert_refused(
        "projection name",
        CheckpointStore::load(&store, &long).await,
    );
    assert_refused(
        "schema name",
        PostgresStore::builder(store.pool().clone())
            .schema(long.as_str())
            .build()
            .await,
    );
    assert_eq!(store.head_position().await.unwrap(), 0);
}

/// `InvalidInput` whose message quotes at most 80 bytes of the input.
fn assert_refused<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::InvalidInput(message)) => assert!(
            message.len() < 200 && !message.contains(&"x".repeat(81)),
            "{what}: the message quotes too much: {message}"
        ),
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

/// Rows in the schema's events and snapshots tables.
async fn row_counts(store: &PostgresStore, schema: &str) -> (i64, i64) {
    sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM \"{schema}\".events), \
                (SELECT count(*) FROM \"{schema}\".snapshots)"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// The one stream-id rule (`StreamId::validate`): ids at its limits, multi-byte UTF-8 included,
/// append, read and snapshot like any other; ids past them are refused by every call that takes
/// a stream, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ids_follow_the_one_rule() {
    let (store, guard) = store("streamids").await;
    // 64 two-byte characters are 128 bytes, 64 four-byte ones 256.
    let widest = StreamId::new("é".repeat(64), "🦀".repeat(64));
    assert_eq!(widest.aggregate_type.len(), StreamId::MAX_TYPE_LEN);
    assert_eq!(widest.aggregate_id.len(), StreamId::MAX_ID_LEN);
    let longest = StreamId::new(
        "t".repeat(StreamId::MAX_TYPE_LEN),
        "i".repeat(StreamId::MAX_ID_LEN),
    );
    let mut written = Vec::new();
    for stream in [&widest, &longest] {
        let done = store
            .append(stream, ExpectedVersion::NoStream, vec![ev(1), ev(2)])
            .await
            .unwrap();
        assert_eq!(store.read_stream(stream, 1, 10).await.unwrap(), done.events);
        assert_eq!(store.stream_version(stream).await.unwrap(), 2);
        let empty = store
            .append(stream, ExpectedVersion::Exact(2), Vec::new())
            .await
            .unwrap();
        assert_eq!(empty.version, 2);
        let old = Snapshot::new(stream.clone(), 1, b"old".to_vec());
        let snap = Snapshot::new(stream.clone(), 2, b"state".to_vec());
        SnapshotStore::save(&store, old).await.unwrap();
        SnapshotStore::save(&store, snap.clone()).await.unwrap();
        SnapshotStore::prune(&store, stream, 1).await.unwrap();
        assert_eq!(
            SnapshotStore::load_latest(&store, stream).await.unwrap(),
            Some(snap)
        );
        written.extend(done.events);
    }
    assert_eq!(store.read_all(0, 10).await.unwrap(), written);
    assert_eq!(row_counts(&store, &guard.schema).await, (4, 2));

    let long = "x".repeat(1_000);
    let invalid = [
        StreamId::new("", "a"),
        StreamId::new("t", ""),
        StreamId::new(format!("{}x", "é".repeat(64)), "a"),
        StreamId::new("t", format!("{}x", "🦀".repeat(64))),
        StreamId::new(long.clone(), "a"),
        StreamId::new("t", long.clone()),
        StreamId::new("t\0", "a"),
        StreamId::new("t", format!("{long}\0")),
    ];
    for (i, stream) in invalid.iter().enumerate() {
        let what = format!("invalid stream id #{i}");
        let events = vec![ev(1)];
        assert_refused(
            &what,
            store.append(stream, ExpectedVersion::Any, events).await,
        );
        assert_refused(
            &what,
            store.append(stream, ExpectedVersion::Any, Vec::new()).await,
        );
        assert_refused(&what, store.read_stream(stream, 1, 10).await);
        assert_refused(&what, store.stream_version(stream).await);
        let snap = Snapshot::new(stream.clone(), 1, b"s".to_vec());
        assert_refused(&what, SnapshotStore::save(&store, snap).await);
        assert_refused(&what, SnapshotStore::load_latest(&store, stream).await);
        assert_refused(&what, SnapshotStore::prune(&store, stream, 0).await);
    }
    assert_eq!(row_counts(&store, &guard.schema).await, (4, 2));
    assert_eq!(store.read_all(0, 10).await.unwrap(), written);
}

/// `lanes`, `max_batch` and `visibility_wait` change how appends are committed, not what they
/// write: with `max_batch(1)` every append is a transaction of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tuned_builder_commits_one_append_per_statement() {
    let (store, guard) = store("tuned").await;
    let tuned = PostgresStore::builder(pool(&guard.url, 6).await)
        .schema(guard.schema.clone())
        .lanes(3)
        .max_batch(1)
        .visibility_wait(Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(tuned.schema(), guard.schema);
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let tuned = tuned.clone();
        tasks.push(tokio::spawn(async move {
            tuned
                .append(&s(&format!("t{i}")), ExpectedVersion::NoStream, vec![ev(i)])
                .await
                .unwrap()
                .events[0]
                .position
        }));
    }
    let mut positions = Vec::new();
    for t in tasks {
        positions.push(t.await.unwrap());
    }
    let mut transactions: Vec<u64> = positions.iter().map(|p| p >> 16).collect();
    transactions.sort_unstable();
    transactions.dedup();
    assert_eq!(transactions.len(), 24, "one transaction per append");
    // Not waited for by the appends: readable once every older transaction has ended.
    let last = positions.iter().copied().max().unwrap();
    let mut head = store.subscribe();
    tokio::time::timeout(Duration::from_secs(10), head.wait_for(|h| *h >= last))
        .await
        .expect("the appends never became readable")
        .unwrap();
    let mut read: Vec<u64> = store
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    positions.sort_unstable();
    read.sort_unstable();
    assert_eq!(read, positions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_appends_answer_each_request() {
    // Many appends queued at once end up in shared statements; conflicts stay per request.
    let (store, _guard) = store("batched").await;
    for i in 0..50 {
        store
            .append(&s(&format!("b{i}")), ExpectedVersion::NoStream, vec![ev(0)])
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = s(&format!("b{}", i % 50));
            // Half of them expect a version the stream is not at.
            let expected = if i % 2 == 0 {
                ExpectedVersion::Any
            } else {
                ExpectedVersion::Exact(1000)
            };
            (i, store.append(&stream, expected, vec![ev(i), ev(i)]).await)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(done) => {
                assert_eq!(i % 2, 0);
                assert_eq!(done.events.len(), 2);
                ok += 1;
            }
            Err(StoreError::Conflict { expected, actual }) => {
                assert_eq!(i % 2, 1);
                assert_eq!(expected, ExpectedVersion::Exact(1000));
                assert!(actual >= 1);
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 100);
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 50 + 200);
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &all {
        per_stream
            .entry(e.stream.aggregate_id.clone())
            .or_default()
            .push(e.sequence);
    }
    for (id, seqs) in per_stream {
        // Streams b0, b2, ... took four appends of two events; the odd ones only conflicts.
        let n: u64 = id[1..].parse().unwrap();
        let expected = if n.is_multiple_of(2) { 9 } else { 1 };
        assert_eq!(seqs, (1..=expected).collect::<Vec<_>>(), "stream {id}");
    }
}

/// Inserts one event the way an append does, in an explicit transaction left open.
async fn begin_raw_append(conn: &mut sqlx::PgConnection, schema: &str, id: &str) -> u64 {
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    let (position,): (i64,) = sqlx::query_as(&format!(
        "INSERT INTO \"{schema}\".events \
             (position, stream_type, stream_id, sequence, event_type, event_version, payload) \
         VALUES ((pg_current_xact_id()::text::int8 << 16) + 1, 'raw', $1, 1, 'Raw', 1, '\\x00') \
         RETURNING position"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    u64::try_from(position).unwrap()
}

/// The gap problem, step by step: writers whose commits come out of position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_commit_with_lower_position_is_not_skipped() {
    let (store, guard) = store_alone("latecommit").await;
    for round in 0..5 {
        let mut slow = sqlx::PgConnection::connect(&guard.url).await.unwrap();
        let start = store.head_position().await.unwrap() + 1;
        // A takes its position first and stays open.
        let a = begin_raw_append(&mut slow, &guard.schema, &format!("a{round}")).await;
        // B (the store, a later transaction) takes a higher position and commits.
        let b = store
            .append(
                &s(&format!("b{round}")),
                ExpectedVersion::NoStream,
                vec![ev(round)],
            )
            .await
            .unwrap();
        let b = b.events[0].position;
        assert!(a < b, "A's position {a} is below B's {b}");
        // While A is open, readers must not see B: reading B would make them skip A.
        let read = store.read_all(start, 100).await.unwrap();
        assert!(
            read.is_empty(),
            "reader saw {read:?} while a lower position was in flight"
        );
        assert!(store.head_position().await.unwrap() < a);
        sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
        let read: Vec<u64> = store
            .read_all(start, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(read, vec![a, b], "round {round}");
    }
    // The other order: A starts (lower xid) and commits last, after B wrote.
    let start = store.head_position().await.unwrap() + 1;
    let mut slow = sqlx::PgConnection::connect(&guard.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut slow)
        .await
        .unwrap();
    let b = store
        .append(&s("late-b"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap()
        .events[0]
        .position;
    assert!(store.read_all(start, 100).await.unwrap().is_empty());
    let (a,): (i64,) = sqlx::query_as(&format!(
        "INSERT INTO \"{}\".events \
             (position, stream_type, stream_id, sequence, event_type, event_version, payload) \
         VALUES ((pg_current_xact_id()::text::int8 << 16) + 1, 'raw', 'late-a', 1, 'Raw', 1, '\\x00') \
         RETURNING position",
        guard.schema
    ))
    .fetch_one(&mut slow)
    .await
    .unwrap();
    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    let read: Vec<u64> = store
        .read_all(start, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(read, vec![a as u64, b]);
}

/// The gap problem under load: store writers on two pools plus raw writers that hold their
/// transactions open for a random while; a reader tails the log. Every event is seen exactly
/// once, in position order. Run in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tailing_reader_sees_every_event_once_under_out_of_order_commits() {
    let (store, guard) = store_alone("tailing").await;
    let other = PostgresStore::builder(pool(&guard.url, 8).await)
        .schema(guard.schema.clone())
        .build()
        .await
        .unwrap();
    for round in 0..3u64 {
        const WRITERS: u64 = 16;
        const EACH: u64 = 20;
        const RAW: u64 = 4;
        const RAW_EACH: u64 = 10;
        let total = (WRITERS * EACH + RAW * RAW_EACH) as usize;
        let start = store.head_position().await.unwrap() + 1;
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seen: Vec<RecordedEvent> = Vec::new();
                let mut next = start;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while seen.len() < total {
                    assert!(tokio::time::Instant::now() < deadline, "reader timed out");
                    let page = store.read_all(next, 13).await.unwrap();
                    if page.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    for e in page {
                        assert!(e.position >= next);
                        next = e.position + 1;
                        seen.push(e);
                    }
                }
                seen
            })
        };
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = if w % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let stream = s(&format!("r{round}-w{w}"));
                for i in 0..EACH {
                    store
                        .append(&stream, ExpectedVersion::Exact(i), vec![ev(i)])
                        .await
                        .unwrap();
                }
            }));
        }
        for r in 0..RAW {
            let url = guard.url.clone();
            let schema = guard.schema.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                for i in 0..RAW_EACH {
                    begin_raw_append(&mut conn, &schema, &format!("raw-{round}-{r}-{i}")).await;
                    let hold = (r * 7 + i * 13) % 25;
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let seen = reader.await.unwrap();
        let all = store.read_all(start, usize::MAX).await.unwrap();
        assert_eq!(all.len(), total, "round {round}");
        assert_eq!(
            seen, all,
            "round {round}: the tailing reader skipped or reordered events"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_wakes_for_another_nodes_commit() {
    let (a, guard) = store("notify").await;
    // B polls only once a minute: a prompt wake-up must come from NOTIFY.
    let b = PostgresStore::builder(pool(&guard.url, 4).await)
        .schema(guard.schema.clone())
        .poll_interval(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let mut rx = b.subscribe();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = a
        .append(&s("n"), ExpectedVersion::Any, vec![ev(1)])
        .await
        .unwrap();
    let last = done.last_position().unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|h| *h >= last))
        .await
        .expect("node B was not woken by node A's commit")
        .unwrap();

    // Kill B's listener connection: it reconnects, and B still wakes.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query ILIKE 'LISTEN %' AND query LIKE $1",
    )
    .bind(format!("%es.{}%", guard.schema))
    .fetch_all(a.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no listener connection found");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut reached = false;
    for i in 0..20 {
        let done = a
            .append(&s("n"), ExpectedVersion::Any, vec![ev(i)])
            .await
            .unwrap();
        let last = done.last_position().unwrap();
        if tokio::time::timeout(Duration::from_millis(500), rx.wait_for(|h| *h >= last))
            .await
            .is_ok()
        {
            reached = true;
            break;
        }
    }
    assert!(
        reached,
        "node B never woke again after its listener was killed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_timestamps_round_trip_exactly() {
    let (store, _guard) = store("snaptime").await;
    let mut snap = Snapshot::new(s("x"), 3, b"state".to_vec());
    snap.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
    SnapshotStore::save(&store, snap.clone()).await.unwrap();
    assert_eq!(
        SnapshotStore::load_latest(&store, &s("x")).await.unwrap(),
        Some(snap)
    );
    let mut old = Snapshot::new(s("y"), 1, b"old".to_vec());
    old.timestamp = chrono::DateTime::from_timestamp(-1_000_000, 999_999_999).unwrap();
    SnapshotStore::save(&store, old.clone()).await.unwrap();
    assert_eq!(
        SnapshotStore::load_latest(&store, &s("y")).await.unwrap(),
        Some(old)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable() {
    let (store, guard) = store("poolfull").await;
    let tiny = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&guard.url)
        .await
        .unwrap();
    let tiny_store = PostgresStore::builder(tiny.clone())
        .schema(guard.schema.clone())
        .listen(false)
        .build()
        .await
        .unwrap();
    let _held = (tiny.acquire().await.unwrap(), tiny.acquire().await.unwrap());
    let append = tiny_store
        .append(&s("p"), ExpectedVersion::Any, vec![ev(1)])
        .await;
    assert!(
        matches!(append, Err(StoreError::Unavailable(_))),
        "{append:?}"
    );
    assert!(append.unwrap_err().is_transient());
    let read = tiny_store.read_all(0, 10).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let cp = CheckpointStore::save(&tiny_store, "p", 1, None).await;
    assert!(matches!(cp, Err(StoreError::Unavailable(_))), "{cp:?}");
    assert_eq!(store.stream_version(&s("p")).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_unavailable_and_writes_nothing() {
    let (store, guard) = store_alone("stmttimeout").await;
    let options: sqlx::postgres::PgConnectOptions = guard.url.parse().unwrap();
    let timed = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("statement_timeout", "300ms")]))
        .await
        .unwrap();
    let timed_store = PostgresStore::builder(timed)
        .schema(guard.schema.clone())
        .listen(false)
        .build()
        .await
        .unwrap();
    // Another session blocks all writes to the events table.
    let mut locker = sqlx::PgConnection::connect(&guard.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE \"{}\".events IN EXCLUSIVE MODE",
        guard.schema
    ))
    .execute(&mut locker)
    .await
    .unwrap();
    let append = timed_store
        .append(&s("t"), ExpectedVersion::NoStream, vec![ev(1)])
        .await;
    assert!(
        matches!(append, Err(StoreError::Unavailable(_))),
        "{append:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(store.stream_version(&s("t")).await.unwrap(), 0);
    // And it was safe to retry.
    timed_store
        .append(&s("t"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_during_append_is_indeterminate() {
    let (store, guard) = store_alone("killed").await;
    let mut locker = sqlx::PgConnection::connect(&guard.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query(&format!(
        "LOCK TABLE \"{}\".events IN EXCLUSIVE MODE",
        guard.schema
    ))
    .execute(&mut locker)
    .await
    .unwrap();
    let append = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(&s("k"), ExpectedVersion::NoStream, vec![ev(1)])
                .await
        })
    };
    // Wait until the append is blocked on the lock, then kill its connection.
    let mut killed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let rows: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE $1",
        )
        .bind(format!("%INSERT INTO \"{}\".events%", guard.schema))
        .fetch_all(&mut locker)
        .await
        .unwrap();
        if !rows.is_empty() {
            killed = true;
            break;
        }
    }
    assert!(killed, "the append never blocked");
    let result = append.await.unwrap();
    assert!(
        matches!(result, Err(StoreError::Indeterminate(_))),
        "a write cut off mid-flight must be indeterminate, got {result:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    // Here it did not commit; the store recovers with fresh connections.
    assert_eq!(store.stream_version(&s("k")).await.unwrap(), 0);
    store
        .append(&s("k"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable() {
    // Needs no server: nothing listens on port 1.
    let result = PostgresStore::connect("postgresql://postgres@127.0.0.1:1/test").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[path = "metrics_common/mod.rs"]
mod metrics_common;

/// The store takes its metric handles when built: one append-latency sample per append with
/// events, and lane batch sizes that add up to the appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_report_latency_and_group_sizes() {
    let recorder = metrics_common::TestRecorder::new();
    let (store, _guard) = {
        // Everything up to the build runs on this thread, in this future.
        let _local = metrics::set_default_local_recorder(&recorder);
        store("metrics").await
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        &s(&format!("m-{i}")),
                        ExpectedVersion::NoStream,
                        vec![ev(i)],
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    store
        .append(&s("m-0"), ExpectedVersion::Exact(1), Vec::new())
        .await
        .unwrap();
    let latencies = recorder.histogram(es_stores::metrics::APPEND_SECONDS, "postgres");
    assert_eq!(latencies.len(), 20);
    assert!(
        latencies.iter().all(|s| *s > 0.0 && *s < 30.0),
        "{latencies:?}"
    );
    let groups = recorder.histogram(es_stores::metrics::GROUP_SIZE, "postgres");
    assert_eq!(groups.iter().sum::<f64>(), 20.0, "{groups:?}");
}

/// Appends sent one after another without waiting, several to one stream, some expecting the
/// version the one before leaves (a chain, written in one statement), some stale, some expecting
/// any version: each is decided as if they ran one after another, per stream, as a simple model
/// says; and the chains keep their order in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_to_one_stream_are_decided_in_order() {
    let url = pg_url().await;
    let isolation = shared().await;
    let schema = unique_schema("pipelined");
    let guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
        isolation: Some(isolation),
    };
    let store = PostgresStore::builder(pool(&url, 4).await)
        .schema(schema)
        .lanes(1)
        .max_batch(4096)
        .build()
        .await
        .unwrap();
    // A small deterministic generator (xorshift), so a failure can be replayed.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // The model: each stream's version if the appends run one after another.
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    let streams: Vec<StreamId> = (0..4).map(|i| s(&format!("p{i}"))).collect();
    // The last round only chains: it must share statements.
    let mut chained_from = 0;
    let mut chained = 0;
    for round in 0..5 {
        let chains_only = round == 4;
        if chains_only {
            chained_from = store.head_position().await.unwrap();
        }
        let mut appends = Vec::new();
        let mut expected_results = Vec::new();
        for _ in 0..300 {
            let k = next(4) as usize;
            let id = format!("p{k}");
            let version = model.get(&id).copied().unwrap_or(0);
            let expected = match if chains_only { 9 } else { next(10) } {
                0 => ExpectedVersion::Any,
                1 => ExpectedVersion::Exact(version + 1 + next(2)),
                2 if version > 0 => ExpectedVersion::Exact(version - 1),
                3 if version == 0 => ExpectedVersion::NoStream,
                _ => ExpectedVersion::Exact(version),
            };
            let count = 1 + next(3);
            let events: Vec<NewEvent> = (0..count).map(|i| ev(round * 10_000 + i)).collect();
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => version == 0,
                ExpectedVersion::Exact(v) => v == version,
            };
            if chains_only {
                chained += 1;
            }
            expected_results.push(if ok {
                model.insert(id.clone(), version + count);
                Ok((version, count))
            } else {
                Err(version)
            });
            // Polled once: that queues it at the store before the next one is made
            // (unconstrained: tokio's cooperative budget must not make a poll return before
            // the append is queued).
            let mut append = Box::pin(tokio::task::unconstrained(store.append(
                &streams[k],
                expected,
                events,
            )));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(append.as_mut().poll(&mut cx).is_pending());
            appends.push((id, expected, append));
        }
        for ((id, expected, append), want) in appends.into_iter().zip(expected_results) {
            match (append.await, want) {
                (Ok(done), Ok((before, count))) => {
                    assert_eq!(done.version, before + count, "{id} {expected:?}");
                    let sequences: Vec<u64> = done.events.iter().map(|e| e.sequence).collect();
                    assert_eq!(
                        sequences,
                        (before + 1..=before + count).collect::<Vec<_>>(),
                        "{id} {expected:?}"
                    );
                }
                (Err(StoreError::Conflict { actual, .. }), Err(version)) => {
                    assert_eq!(actual, version, "{id} {expected:?}");
                }
                (got, want) => panic!("{id} {expected:?}: got {got:?}, the model says {want:?}"),
            }
        }
    }
    // The log holds exactly the model's events, each stream gapless, positions increasing.
    let log = store.read_all(1, 100_000).await.unwrap();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut last = 0;
    for e in &log {
        assert!(e.position > last);
        last = e.position;
        let v = seen.entry(e.stream.aggregate_id.clone()).or_insert(0);
        assert_eq!(e.sequence, *v + 1, "{e:?}");
        *v = e.sequence;
    }
    assert_eq!(seen, model);
    // The chains shared statements: without that, a statement holds at most one append per
    // stream (4 here), so the last round would need at least a quarter as many transactions
    // as it has appends.
    let transactions: std::collections::BTreeSet<u64> = log
        .iter()
        .filter(|e| e.position > chained_from)
        .map(|e| e.position >> 16)
        .collect();
    assert!(
        transactions.len() * 4 < chained,
        "{chained} chained appends written in {} transactions",
        transactions.len()
    );
    drop(store);
    drop(guard);
}

/// `append_many`'s bulk path (binary `COPY`) keeps every field of the envelope, decides chains,
/// conflicts and any-version appends as the append statement does, and reports the positions
/// and times the events are read back with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_many_copies_envelopes_exactly() {
    use chrono::{DateTime, Utc};
    use es_core::store::BatchAppend;
    let (store, _guard) = store("bulkenvelope").await;
    // A stream with events already, for an any-version append and a stale chain.
    store
        .append(&s("old"), ExpectedVersion::NoStream, vec![ev(0), ev(1)])
        .await
        .unwrap();
    let time = |i: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + i, 123_456_789).unwrap();
    let event = |stream: usize, i: usize| {
        let mut e = NewEvent::new(
            format!("Type{}", i % 3),
            vec![0, 255, (stream % 256) as u8, i as u8],
        )
        .metadata("stream", stream as u64)
        .metadata(
            "nested",
            serde_json::json!({"a": [1.5, null, "é\"\\"], "b": 3.0}),
        );
        e.event_version = (i % 4) as u32 + 1;
        if i.is_multiple_of(2) {
            e.envelope.command_id = Some(format!("cmd-{stream}-{i}").into());
            e.envelope.correlation_id = Some("corr ✓".into());
            e.envelope.causation_id = Some(format!("cause-{i}").into());
            e.envelope.tags = vec!["t1".to_owned(), format!("s{stream}"), "ü,{}\"".to_owned()];
            e.timestamp = Some(time(i as i64));
        }
        if i % 3 == 1 {
            e.envelope.metadata.clear();
        }
        e
    };
    // Streams in reverse order of their ids, each with a chain of two appends (the second
    // after the other streams' first ones), then a stale append, an any-version one and one
    // that conflicts.
    let streams = 300;
    let id = |k: usize| format!("s{:04}", streams - k);
    let mut batch = Vec::new();
    for k in 0..streams {
        batch.push(BatchAppend::new(
            s(&id(k)),
            ExpectedVersion::NoStream,
            (0..2).map(|i| event(k, i)).collect(),
        ));
    }
    for k in 0..streams {
        batch.push(BatchAppend::new(
            s(&id(k)),
            ExpectedVersion::Exact(2),
            (2..2 + k % 4 + 1).map(|i| event(k, i)).collect(),
        ));
    }
    batch.push(BatchAppend::new(
        s("old"),
        ExpectedVersion::Any,
        vec![event(7, 4)],
    ));
    batch.push(BatchAppend::new(
        s("new"),
        ExpectedVersion::Exact(1),
        vec![ev(9)],
    ));
    let inputs: Vec<(StreamId, Vec<NewEvent>)> = batch
        .iter()
        .map(|a| (a.stream.clone(), a.events.clone()))
        .collect();
    let outcomes = store.append_many(batch).await.unwrap();
    assert_eq!(outcomes.len(), 2 * streams + 2);
    assert!(
        matches!(
            outcomes[2 * streams + 1],
            Err(StoreError::Conflict {
                expected: ExpectedVersion::Exact(1),
                actual: 0
            })
        ),
        "{:?}",
        outcomes[2 * streams + 1]
    );
    let mut positions = Vec::new();
    for ((stream, events), outcome) in inputs.iter().zip(&outcomes).take(2 * streams + 1) {
        let done = outcome.as_ref().unwrap();
        assert_eq!(done.events.len(), events.len());
        let first = done.events[0].sequence;
        let stored = store
            .read_stream(stream, first, events.len())
            .await
            .unwrap();
        assert_eq!(stored, done.events, "{stream:?}");
        for (got, want) in stored.iter().zip(events) {
            assert_eq!(got.event_type, want.event_type);
            assert_eq!(got.event_version, want.event_version);
            assert_eq!(got.payload, want.payload);
            assert_eq!(got.metadata, want.envelope.metadata);
            assert_eq!(got.command_id, want.envelope.command_id);
            assert_eq!(got.correlation_id, want.envelope.correlation_id);
            assert_eq!(got.causation_id, want.envelope.causation_id);
            assert_eq!(got.tags, want.envelope.tags);
            if let Some(t) = want.timestamp {
                assert_eq!(got.timestamp, t);
            }
            positions.push(got.position);
        }
    }
    assert_eq!(
        outcomes[2 * streams].as_ref().unwrap().events[0].sequence,
        3
    );
    assert_eq!(
        store.stream_version(&s(&id(5))).await.unwrap(),
        2 + 5 % 4 + 1
    );
    // One transaction, positions in the order of the batch.
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(positions[0] >> 16, positions[positions.len() - 1] >> 16);
    // The rows were written by the bulk path: sorted by stream, not in the order of the batch
    // (streams in reverse order). The heap's order shows it, give or take the few rows a page
    // with room left took out of turn.
    let ids: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT stream_id FROM \"{}\".events WHERE position >> 16 = $1 ORDER BY ctid",
        store.schema()
    ))
    .bind(i64::try_from(positions[0] >> 16).unwrap())
    .fetch_all(store.pool())
    .await
    .unwrap();
    let ids: Vec<String> = ids.into_iter().map(|(i,)| i).collect();
    let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(
        inversions * 20 < ids.len(),
        "{inversions} of {} rows out of stream order",
        ids.len()
    );
    assert_eq!(ids.first().map(String::as_str), Some("old"));
}

/// A batch of more events than one transaction holds is split: every event is written, no
/// transaction holds more than 65,535, and the global log is in the order of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_many_splits_beyond_one_transaction() {
    use es_core::store::BatchAppend;
    let (store, _guard) = store("bulksplit").await;
    let streams = 1_000;
    let mut batch = Vec::new();
    for round in 0..7_u64 {
        for k in 0..streams {
            let expected = match round {
                0 => ExpectedVersion::NoStream,
                r => ExpectedVersion::Exact(r * 10),
            };
            batch.push(BatchAppend::new(
                s(&format!("k{k}")),
                expected,
                (0..10).map(|i| ev(round * 10 + i)).collect(),
            ));
        }
    }
    let outcomes = store.append_many(batch).await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    let all = store.read_all(0, 100_000).await.unwrap();
    assert_eq!(all.len(), 70_000);
    let transactions: std::collections::BTreeSet<u64> =
        all.iter().map(|e| e.position >> 16).collect();
    assert_eq!(transactions.len(), 2);
    assert!(all.iter().all(|e| e.position & 0xFFFF != 0));
    for k in [0, 499, 999] {
        let events = store
            .read_stream(&s(&format!("k{k}")), 1, 100)
            .await
            .unwrap();
        assert_eq!(events.len(), 70);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.payload, format!("{{\"n\":{i}}}").into_bytes());
        }
    }
    let written: Vec<u64> = outcomes
        .iter()
        .flat_map(|o| o.as_ref().unwrap().events.iter().map(|e| e.position))
        .collect();
    assert_eq!(written, all.iter().map(|e| e.position).collect::<Vec<_>>());
}

/// `append_many` decides an append expecting a version it saw its stream reach without reading
/// the version again; a stream that moved on since (another writer appended) still gets a
/// conflict with its actual version, and the rest of the batch is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_many_sees_streams_that_moved_on() {
    use es_core::store::BatchAppend;
    let (store, _guard) = store("bulkmoved").await;
    // Another node on the same schema.
    let other = PostgresStore::builder(store.pool().clone())
        .schema(store.schema())
        .build()
        .await
        .unwrap();
    let batch = |appends: Vec<(&str, ExpectedVersion, u64)>| {
        appends
            .into_iter()
            .map(|(id, expected, n)| BatchAppend::new(s(id), expected, vec![ev(n)]))
            .collect::<Vec<_>>()
    };
    let done = store
        .append_many(batch(vec![
            ("a", ExpectedVersion::NoStream, 1),
            ("b", ExpectedVersion::NoStream, 1),
            ("a", ExpectedVersion::Exact(1), 2),
        ]))
        .await
        .unwrap();
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    // `a` moves on behind the store's back; `c` appears.
    other
        .append(&s("a"), ExpectedVersion::Exact(2), vec![ev(3)])
        .await
        .unwrap();
    other
        .append(&s("c"), ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let done = store
        .append_many(batch(vec![
            ("b", ExpectedVersion::Exact(1), 2),
            ("a", ExpectedVersion::Exact(2), 3),
            ("c", ExpectedVersion::NoStream, 1),
            ("d", ExpectedVersion::NoStream, 1),
        ]))
        .await
        .unwrap();
    assert_eq!(done[0].as_ref().unwrap().version, 2);
    assert!(
        matches!(
            done[1],
            Err(StoreError::Conflict {
                expected: ExpectedVersion::Exact(2),
                actual: 3
            })
        ),
        "{:?}",
        done[1]
    );
    assert!(
        matches!(
            done[2],
            Err(StoreError::Conflict {
                expected: ExpectedVersion::NoStream,
                actual: 1
            })
        ),
        "{:?}",
        done[2]
    );
    assert_eq!(done[3].as_ref().unwrap().version, 1);
    // Nothing of the conflicting appends was written; the store now writes after the versions
    // it read.
    assert_eq!(store.stream_version(&s("a")).await.unwrap(), 3);
    assert_eq!(store.stream_version(&s("c")).await.unwrap(), 1);
    let done = store
        .append_many(batch(vec![
            ("a", ExpectedVersion::Exact(3), 4),
            ("c", ExpectedVersion::Exact(1), 2),
            ("a", ExpectedVersion::Exact(4), 5),
        ]))
        .await
        .unwrap();
    assert_eq!(
        done.iter()
            .map(|o| o.as_ref().unwrap().version)
            .collect::<Vec<_>>(),
        vec![4, 2, 5]
    );
    let a = store.read_stream(&s("a"), 1, 10).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        (1..=5)
            .map(|n| format!("{{\"n\":{n}}}").into_bytes())
            .collect::<Vec<_>>()
    );
}
