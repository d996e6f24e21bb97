//! Stream ids: the one rule of [`StreamId::validate`] holds on every store.

use crate::store::{
    CheckpointStore, ExpectedVersion, Snapshot, SnapshotStore, StoreError, StreamId,
};

use super::{ConformanceStore, append_ok, events, head, read_all, read_stream, version};

/// The longest message an invalid id may produce, in bytes.
const MAX_MESSAGE: usize = 200;

/// The most of an id an error message may quote, in bytes.
const MAX_QUOTED: usize = 80;

/// Ids the rule refuses, each with why.
fn invalid_ids() -> Vec<(&'static str, StreamId)> {
    vec![
        ("an empty type", StreamId::new("", "id")),
        ("an empty id", StreamId::new("conformance", "")),
        (
            "a type of 129 bytes",
            StreamId::new("t".repeat(StreamId::MAX_TYPE_LEN + 1), "id"),
        ),
        (
            "an id of 257 bytes",
            StreamId::new("conformance", "i".repeat(StreamId::MAX_ID_LEN + 1)),
        ),
        (
            "an id of 257 bytes of 2-byte characters and one more",
            StreamId::new("conformance", format!("{}x", "é".repeat(128))),
        ),
        (
            "an id of 10,000 bytes",
            StreamId::new("conformance", "i".repeat(10_000)),
        ),
        ("a NUL in the type", StreamId::new("confor\0mance", "id")),
        ("a NUL in the id", StreamId::new("conformance", "i\0d")),
    ]
}

/// Ids the rule accepts: at the length limits (in bytes, also of multi-byte characters), and
/// with spaces, `/` and any Unicode.
fn valid_ids() -> Vec<StreamId> {
    vec![
        StreamId::new(
            "t".repeat(StreamId::MAX_TYPE_LEN),
            "i".repeat(StreamId::MAX_ID_LEN),
        ),
        // Same type, an id differing only in its last byte: another stream.
        StreamId::new(
            "t".repeat(StreamId::MAX_TYPE_LEN),
            format!("{}j", "i".repeat(StreamId::MAX_ID_LEN - 1)),
        ),
        // 'é' is 2 bytes: 64 and 128 of them are exactly the limits.
        StreamId::new("é".repeat(64), "é".repeat(128)),
        // '🦀' is 4 bytes.
        StreamId::new("conformance", "🦀".repeat(64)),
        StreamId::new("conformance", "an id with spaces/and/slashes"),
        StreamId::new("type with space/ü", "ünïcödé 日本語 ✓ \"quoted\" \\ tab\t"),
        StreamId::new("x", "y"),
    ]
}

/// Checks that `result` is `InvalidInput` with a short message quoting little of `id`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(
    what: &str,
    op: &str,
    id: &StreamId,
    result: Result<T, StoreError>,
) {
    let message = match result {
        Err(StoreError::InvalidInput(message)) => message,
        other => panic!(
            "{op} with {what} must fail with InvalidInput, got {:?}",
            other.map_err(|e| e.to_string())
        ),
    };
    assert!(
        message.len() <= MAX_MESSAGE,
        "{op} with {what}: the message is {} bytes, at most {MAX_MESSAGE} expected: {message}",
        message.len()
    );
    for part in [&id.aggregate_type, &id.aggregate_id] {
        if part.len() > MAX_QUOTED {
            // The shortest prefix longer than allowed that ends on a character boundary.
            let end = (MAX_QUOTED + 1..=part.len())
                .find(|&end| part.is_char_boundary(end))
                .unwrap_or(part.len());
            let too_much = &part[..end];
            assert!(
                !message.contains(too_much),
                "{op} with {what}: the message quotes more than {MAX_QUOTED} bytes of the id"
            );
        }
    }
}

/// An invalid stream id (empty part, type over 128 bytes, id over 256 bytes, a NUL) is refused
/// with a short `InvalidInput` by every operation that takes one, and nothing is written.
pub async fn invalid_stream_ids_are_refused<S: ConformanceStore>(store: S) {
    // Something written first, so that "nothing written" is not the empty store's answer.
    let valid = StreamId::new("conformance", "valid");
    append_ok(&store, &valid, ExpectedVersion::NoStream, events(0..2)).await;
    let head_before = head(&store).await;
    for (what, id) in invalid_ids() {
        assert_invalid(
            what,
            "append",
            &id,
            store.append(&id, ExpectedVersion::Any, events(0..1)).await,
        );
        assert_invalid(
            what,
            "append (NoStream)",
            &id,
            store
                .append(&id, ExpectedVersion::NoStream, events(0..1))
                .await,
        );
        assert_invalid(
            what,
            "read_stream",
            &id,
            store.read_stream(&id, 1, 10).await,
        );
        assert_invalid(what, "stream_version", &id, store.stream_version(&id).await);
        let snapshot = Snapshot::new(id.clone(), 1, b"{}".to_vec());
        assert_invalid(
            what,
            "snapshot save",
            &id,
            SnapshotStore::save(&store, snapshot).await,
        );
        assert_invalid(
            what,
            "snapshot load_latest",
            &id,
            SnapshotStore::load_latest(&store, &id).await,
        );
        assert_eq!(
            head(&store).await,
            head_before,
            "a refused append with {what} moved the head"
        );
    }
    assert_eq!(
        read_all(&store, 0, 100).await.len(),
        2,
        "a refused append wrote"
    );
    assert_eq!(version(&store, &valid).await, 2);
    // Checkpoint names are not stream ids: the store still answers.
    if let Err(e) = CheckpointStore::load(&store, "conformance").await {
        panic!("checkpoint load failed after refused appends: {e}");
    }
}

/// Ids at the length limits (counted in bytes, also for multi-byte UTF-8) and ids with spaces,
/// `/` and any Unicode are valid: they append, read back equal, and snapshot.
pub async fn stream_ids_at_the_limits_round_trip<S: ConformanceStore>(store: S) {
    let ids = valid_ids();
    for id in &ids {
        if let Err(e) = id.validate() {
            panic!("the suite's own id {id} is invalid: {e}");
        }
        let done = append_ok(&store, id, ExpectedVersion::NoStream, events(0..2)).await;
        assert_eq!(done.version, 2, "append to {id}");
        assert!(
            done.events.iter().all(|e| &e.stream == id),
            "append to {id} changed the id"
        );
        let read = read_stream(&store, id, 1, 10).await;
        assert_eq!(read, done.events, "{id} reads back what was appended");
        assert_eq!(version(&store, id).await, 2, "the version of {id}");
        let state = format!("state of {}", id.aggregate_id).into_bytes();
        if let Err(e) =
            SnapshotStore::save(&store, Snapshot::new(id.clone(), 2, state.clone())).await
        {
            panic!("snapshot save for {id} failed: {e}");
        }
        match SnapshotStore::load_latest(&store, id).await {
            Ok(Some(snapshot)) => {
                assert_eq!(&snapshot.stream, id, "the snapshot of {id} changed the id");
                assert_eq!((snapshot.version, snapshot.state), (2, state));
            }
            other => panic!("load_latest for {id}: {other:?}"),
        }
    }
    let all = read_all(&store, 0, 1000).await;
    assert_eq!(all.len(), 2 * ids.len(), "every stream is its own");
    for id in &ids {
        assert_eq!(
            all.iter().filter(|e| &e.stream == id).count(),
            2,
            "the log holds {id} exactly as written"
        );
    }
}
