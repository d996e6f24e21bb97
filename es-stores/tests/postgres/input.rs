//! Invalid input is refused before anything is written; the one stream-id rule.

use es_core::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore, StoreError,
    StreamId,
};
use es_stores::PostgresStore;

use crate::postgres_common::{ev, s, store};

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
