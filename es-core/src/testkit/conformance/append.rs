//! Appends: expected versions, atomic batches, gapless sequences, increasing positions.

use crate::store::ExpectedVersion;

use super::{
    Capabilities, ConformanceStore, append_ok, assert_conflict, event, events, head, read_all,
    read_stream, sequences, stream, version,
};

/// `NoStream` on a new stream writes sequence 1 and version 1.
pub async fn append_no_stream_to_new_stream<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let done = append_ok(&store, &s, ExpectedVersion::NoStream, vec![event(1)]).await;
    assert_eq!(done.version, 1);
    assert_eq!(sequences(&done.events), vec![1]);
    assert_eq!(done.events[0].stream, s);
    assert_eq!(version(&store, &s).await, 1);
}

/// `Any` appends to new and existing streams.
pub async fn append_any<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let first = append_ok(&store, &s, ExpectedVersion::Any, events(0..2)).await;
    assert_eq!(first.version, 2);
    let second = append_ok(&store, &s, ExpectedVersion::Any, vec![event(2)]).await;
    assert_eq!(second.version, 3);
    assert_eq!(sequences(&second.events), vec![3]);
}

/// `Exact(0)` means "empty"; `Exact(v)` appends after version `v`.
pub async fn append_exact<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let first = append_ok(&store, &s, ExpectedVersion::Exact(0), events(0..3)).await;
    assert_eq!(first.version, 3);
    let second = append_ok(&store, &s, ExpectedVersion::Exact(3), events(3..5)).await;
    assert_eq!(second.version, 5);
    assert_eq!(sequences(&second.events), vec![4, 5]);
}

/// A wrong expected version is rejected with the actual version, and nothing is written.
pub async fn wrong_expected_version_writes_nothing<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let fresh = stream("fresh");
    assert_conflict(
        store
            .append(&fresh, ExpectedVersion::Exact(2), vec![event(0)])
            .await,
        ExpectedVersion::Exact(2),
        0,
    );
    append_ok(&store, &s, ExpectedVersion::NoStream, events(0..2)).await;
    let head_before = head(&store).await;
    assert_conflict(
        store
            .append(&s, ExpectedVersion::NoStream, vec![event(9)])
            .await,
        ExpectedVersion::NoStream,
        2,
    );
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(1), events(9..12))
            .await,
        ExpectedVersion::Exact(1),
        2,
    );
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(3), vec![event(9)])
            .await,
        ExpectedVersion::Exact(3),
        2,
    );
    assert_eq!(
        version(&store, &s).await,
        2,
        "rejected appends changed the version"
    );
    assert_eq!(version(&store, &fresh).await, 0);
    assert_eq!(
        head(&store).await,
        head_before,
        "rejected appends moved the head"
    );
    assert_eq!(read_stream(&store, &s, 1, 100).await.len(), 2);
    assert_eq!(read_all(&store, 0, 100).await.len(), 2);
}

/// A multi-event append is all or nothing, contiguous in its stream and in the global log.
pub async fn multi_event_append_is_atomic<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let done = append_ok(&store, &s, ExpectedVersion::NoStream, events(0..5)).await;
    assert_eq!(sequences(&done.events), vec![1, 2, 3, 4, 5]);
    let positions: Vec<u64> = done.events.iter().map(|e| e.position).collect();
    for pair in positions.windows(2) {
        assert!(pair[0] < pair[1], "positions of one batch must increase");
    }
    let rejected = store
        .append(&s, ExpectedVersion::Exact(4), events(5..10))
        .await;
    assert_conflict(rejected, ExpectedVersion::Exact(4), 5);
    let stored = read_stream(&store, &s, 1, 100).await;
    assert_eq!(
        stored.len(),
        5,
        "a rejected batch must write none of its events"
    );
    assert_eq!(
        stored, done.events,
        "stored events equal what append returned"
    );
}

/// An empty append checks the version and writes nothing.
pub async fn empty_append_writes_nothing<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let done = append_ok(&store, &s, ExpectedVersion::NoStream, Vec::new()).await;
    assert_eq!(done.version, 0);
    assert!(done.events.is_empty());
    assert_eq!(head(&store).await, 0, "an empty append moved the head");
    let written = append_ok(&store, &s, ExpectedVersion::NoStream, events(0..2)).await;
    let last = written.last_position().unwrap_or(0);
    let done = append_ok(&store, &s, ExpectedVersion::Exact(2), Vec::new()).await;
    assert_eq!(done.version, 2);
    assert!(done.events.is_empty());
    assert_eq!(head(&store).await, last, "an empty append moved the head");
    assert_eq!(read_all(&store, 0, 100).await.len(), 2);
    assert_conflict(
        store
            .append(&s, ExpectedVersion::Exact(7), Vec::new())
            .await,
        ExpectedVersion::Exact(7),
        2,
    );
}

/// Sequences start at 1 and have no gaps, across many appends.
pub async fn sequences_start_at_one_and_are_gapless<S: ConformanceStore>(store: S) {
    let s = stream("a");
    let mut expected_version = 0;
    for batch in [1u64, 3, 1, 7, 2] {
        let done = append_ok(
            &store,
            &s,
            ExpectedVersion::Exact(expected_version),
            events(0..batch),
        )
        .await;
        expected_version += batch;
        assert_eq!(done.version, expected_version);
    }
    let all = read_stream(&store, &s, 0, 1000).await;
    assert_eq!(sequences(&all), (1..=expected_version).collect::<Vec<_>>());
}

/// Positions strictly increase across streams, in commit order.
pub async fn positions_increase_across_streams<S: ConformanceStore>(store: S, caps: Capabilities) {
    let mut returned = Vec::new();
    for (i, id) in ["a", "b", "a", "c", "b"].iter().enumerate() {
        let done = append_ok(
            &store,
            &stream(id),
            ExpectedVersion::Any,
            events(0..(i as u64 + 1)),
        )
        .await;
        returned.extend(done.events.iter().map(|e| e.position));
    }
    for pair in returned.windows(2) {
        assert!(
            pair[0] < pair[1],
            "positions must increase in commit order: {returned:?}"
        );
    }
    let all = read_all(&store, 0, 1000).await;
    let read: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(read, returned, "read_all returns events in position order");
    if caps.gapless_positions {
        assert_eq!(
            read,
            (1..=read.len() as u64).collect::<Vec<_>>(),
            "positions are gapless from 1"
        );
    }
    assert_eq!(head(&store).await, *read.last().unwrap_or(&0));
}
