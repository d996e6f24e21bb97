//! The store conformance suite: every case a backend must pass.
//!
//! Run the whole suite with [`store_conformance_tests!`](crate::store_conformance_tests), which
//! writes one `#[tokio::test]` per case. Each case is also a public async function taking a fresh
//! store, so a backend can run a case on its own. Cases panic with a message naming what broke.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::store::{
    CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, Snapshot, SnapshotStore,
    StoreError, StreamId,
};

/// What a store needs to run the suite.
pub trait ConformanceStore:
    EventStore + SnapshotStore + CheckpointStore + Clone + Send + Sync + 'static
{
}

impl<S: EventStore + SnapshotStore + CheckpointStore + Clone + Send + Sync + 'static>
    ConformanceStore for S
{
}

/// What the backend promises beyond the common contract.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Positions have no holes (memory, file, LMDB). A store that documents holes must still
    /// never let a reader skip an event.
    pub gapless_positions: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            gapless_positions: true,
        }
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("conformance", id)
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Numbered", format!("{{\"n\":{n}}}").into_bytes())
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

async fn append_ok<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    batch: Vec<NewEvent>,
) -> crate::store::AppendResult {
    match store.append(stream, expected, batch).await {
        Ok(done) => done,
        Err(e) => panic!("append to {stream} with {expected:?} failed: {e}"),
    }
}

async fn read_stream<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> Vec<RecordedEvent> {
    match store.read_stream(stream, from, limit).await {
        Ok(events) => events,
        Err(e) => panic!("read_stream({stream}, {from}, {limit}) failed: {e}"),
    }
}

async fn read_all<S: EventStore>(store: &S, from: u64, limit: usize) -> Vec<RecordedEvent> {
    match store.read_all(from, limit).await {
        Ok(events) => events,
        Err(e) => panic!("read_all({from}, {limit}) failed: {e}"),
    }
}

async fn version<S: EventStore>(store: &S, stream: &StreamId) -> u64 {
    match store.stream_version(stream).await {
        Ok(v) => v,
        Err(e) => panic!("stream_version({stream}) failed: {e}"),
    }
}

async fn head<S: EventStore>(store: &S) -> u64 {
    match store.head_position().await {
        Ok(v) => v,
        Err(e) => panic!("head_position failed: {e}"),
    }
}

fn sequences(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

fn assert_conflict<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(StoreError::Conflict {
            expected: e,
            actual: a,
        }) => {
            assert_eq!(e, expected, "conflict reports the expected version");
            assert_eq!(a, actual, "conflict reports the actual version");
        }
        other => panic!("expected Conflict {{ {expected:?}, actual {actual} }}, got {other:?}"),
    }
}

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

/// `read_stream` honours `from_sequence` and `limit` at their edges.
pub async fn read_stream_ranges<S: ConformanceStore>(store: S) {
    let s = stream("a");
    append_ok(&store, &s, ExpectedVersion::NoStream, events(0..10)).await;
    append_ok(
        &store,
        &stream("other"),
        ExpectedVersion::NoStream,
        events(0..3),
    )
    .await;
    assert_eq!(
        sequences(&read_stream(&store, &s, 0, 100).await),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        sequences(&read_stream(&store, &s, 1, 100).await),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        sequences(&read_stream(&store, &s, 4, 3).await),
        vec![4, 5, 6]
    );
    assert_eq!(sequences(&read_stream(&store, &s, 10, 5).await), vec![10]);
    assert!(
        read_stream(&store, &s, 11, 5).await.is_empty(),
        "reading past the end is empty"
    );
    assert!(read_stream(&store, &s, u64::MAX, 5).await.is_empty());
    assert!(
        read_stream(&store, &s, 1, 0).await.is_empty(),
        "limit 0 reads nothing"
    );
    assert_eq!(sequences(&read_stream(&store, &s, 1, 1).await), vec![1]);
    assert_eq!(read_stream(&store, &s, 1, usize::MAX).await.len(), 10);
}

/// `read_all` honours `from_position` and `limit` at their edges.
pub async fn read_all_ranges<S: ConformanceStore>(store: S) {
    for id in ["a", "b", "c"] {
        append_ok(&store, &stream(id), ExpectedVersion::NoStream, events(0..4)).await;
    }
    let all = read_all(&store, 0, 1000).await;
    assert_eq!(all.len(), 12);
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(
        read_all(&store, 1, 1000).await,
        all,
        "from 0 and from 1 both read everything"
    );
    let third = positions[2];
    let page = read_all(&store, third, 4).await;
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        positions[2..6].to_vec()
    );
    let last = positions[11];
    assert_eq!(read_all(&store, last, 10).await.len(), 1);
    assert!(
        read_all(&store, last + 1, 10).await.is_empty(),
        "reading past the head is empty"
    );
    assert!(read_all(&store, u64::MAX, 10).await.is_empty());
    assert!(
        read_all(&store, 0, 0).await.is_empty(),
        "limit 0 reads nothing"
    );
    assert_eq!(read_all(&store, 0, 1).await.len(), 1);
    assert_eq!(read_all(&store, 0, usize::MAX).await.len(), 12);
}

/// `read_all_filtered` returns only accepted events, in order, and reports how far it scanned.
pub async fn read_all_filtered_skips_but_advances<S: ConformanceStore>(store: S) {
    let s = stream("f");
    let batch: Vec<NewEvent> = (0..9u64)
        .map(|i| {
            let kind = if i % 3 == 0 { "Wanted" } else { "Other" };
            NewEvent::new(kind, format!("{{\"n\":{i}}}").into_bytes())
        })
        .collect();
    append_ok(&store, &s, ExpectedVersion::NoStream, batch).await;
    let all = read_all(&store, 0, 100).await;
    fn wanted(t: &str) -> bool {
        t == "Wanted"
    }
    let page = match store.read_all_filtered(0, 100, wanted).await {
        Ok(page) => page,
        Err(e) => panic!("read_all_filtered failed: {e}"),
    };
    assert_eq!(page.scanned, 9);
    assert_eq!(page.scanned_to, all[8].position);
    let want: Vec<RecordedEvent> = all
        .iter()
        .filter(|e| e.event_type == "Wanted")
        .cloned()
        .collect();
    assert_eq!(
        page.events, want,
        "accepted events come back whole, in order"
    );
    // A page that ends on skipped events still moves the reader forward.
    let page = match store.read_all_filtered(all[1].position, 2, wanted).await {
        Ok(page) => page,
        Err(e) => panic!("read_all_filtered failed: {e}"),
    };
    assert!(page.events.is_empty());
    assert_eq!((page.scanned, page.scanned_to), (2, all[2].position));
    let page = match store
        .read_all_filtered(all[8].position + 1, 10, wanted)
        .await
    {
        Ok(page) => page,
        Err(e) => panic!("read_all_filtered failed: {e}"),
    };
    assert_eq!(
        (page.scanned, page.events.len()),
        (0, 0),
        "nothing past the head"
    );
}

/// An unknown stream is empty, at version 0; an empty store has head 0.
pub async fn unknown_stream_is_empty<S: ConformanceStore>(store: S) {
    assert_eq!(head(&store).await, 0);
    assert!(read_all(&store, 0, 10).await.is_empty());
    let s = stream("nobody");
    assert_eq!(version(&store, &s).await, 0);
    assert!(read_stream(&store, &s, 0, 10).await.is_empty());
    append_ok(
        &store,
        &stream("somebody"),
        ExpectedVersion::Any,
        events(0..1),
    )
    .await;
    assert!(read_stream(&store, &s, 0, 10).await.is_empty());
    // The same id under another aggregate type is another stream.
    let same_id = StreamId::new("other_type", "somebody");
    assert_eq!(version(&store, &same_id).await, 0);
}

/// Event type, version, metadata and payload bytes come back exactly as written.
pub async fn metadata_and_payload_round_trip<S: ConformanceStore>(store: S) {
    let s = StreamId::new("weird type ü/é", "id with spaces/and \"quotes\" ✓");
    let binary: Vec<u8> = (0..=255u8).collect();
    let batch = vec![
        NewEvent::new("Json", br#"{"a":[1,2,{"b":"\u00e9"}],"n":null}"#.to_vec())
            .version(3)
            .metadata("correlation_id", "c-1")
            .metadata("causation_id", "ünïcödé \n newline")
            .metadata("", "empty key"),
        NewEvent::new("Binary", binary.clone()),
        NewEvent::new("Empty", Vec::new()),
        NewEvent::new("NotJson", b"{not json".to_vec()),
        NewEvent::new("Scalar", b"42".to_vec()),
    ];
    let done = append_ok(&store, &s, ExpectedVersion::NoStream, batch.clone()).await;
    for stored in [
        read_stream(&store, &s, 1, 10).await,
        read_all(&store, 0, 10).await,
        done.events,
    ] {
        assert_eq!(stored.len(), batch.len());
        for (got, want) in stored.iter().zip(&batch) {
            assert_eq!(got.stream, s);
            assert_eq!(got.event_type, want.event_type);
            assert_eq!(got.event_version, want.event_version);
            assert_eq!(got.metadata, want.metadata);
            assert_eq!(
                got.payload, want.payload,
                "payload of {} changed",
                want.event_type
            );
        }
    }
}

/// Snapshots: save, load the latest, prune keeping the most recent.
pub async fn snapshots_save_load_prune<S: ConformanceStore>(store: S) {
    let s = stream("a");
    assert_eq!(
        SnapshotStore::load_latest(&store, &s).await.ok(),
        Some(None)
    );
    for v in [10u64, 30, 20] {
        let snap = Snapshot::new(s.clone(), v, format!("state-{v}").into_bytes());
        if let Err(e) = SnapshotStore::save(&store, snap).await {
            panic!("snapshot save failed: {e}");
        }
    }
    let other = Snapshot::new(stream("b"), 5, b"other".to_vec());
    if let Err(e) = SnapshotStore::save(&store, other).await {
        panic!("snapshot save failed: {e}");
    }
    let latest = match SnapshotStore::load_latest(&store, &s).await {
        Ok(Some(snap)) => snap,
        other => panic!("load_latest: {other:?}"),
    };
    assert_eq!(
        latest.version, 30,
        "the latest snapshot is the highest version"
    );
    assert_eq!(latest.state, b"state-30".to_vec());
    assert_eq!(latest.stream, s);
    if let Err(e) = SnapshotStore::prune(&store, &s, 1).await {
        panic!("prune failed: {e}");
    }
    let latest = SnapshotStore::load_latest(&store, &s).await.ok().flatten();
    assert_eq!(
        latest.map(|x| x.version),
        Some(30),
        "prune keeps the most recent"
    );
    if let Err(e) = SnapshotStore::prune(&store, &s, 0).await {
        panic!("prune failed: {e}");
    }
    assert_eq!(
        SnapshotStore::load_latest(&store, &s).await.ok(),
        Some(None)
    );
    let b = SnapshotStore::load_latest(&store, &stream("b"))
        .await
        .ok()
        .flatten();
    assert_eq!(
        b.map(|x| x.state),
        Some(b"other".to_vec()),
        "prune touches one stream only"
    );
    // Saving the same version again replaces it.
    for state in [b"one".to_vec(), b"two".to_vec()] {
        if let Err(e) = SnapshotStore::save(&store, Snapshot::new(s.clone(), 7, state)).await {
            panic!("snapshot save failed: {e}");
        }
    }
    let again = SnapshotStore::load_latest(&store, &s).await.ok().flatten();
    assert_eq!(again.map(|x| x.state), Some(b"two".to_vec()));
}

/// Checkpoints: unknown is `None`; saved with and without state; overwritten.
pub async fn checkpoints_save_load<S: ConformanceStore>(store: S) {
    assert_eq!(CheckpointStore::load(&store, "p").await.ok(), Some(None));
    let save = |name: &'static str, pos: u64, state: Option<Vec<u8>>| {
        let store = store.clone();
        async move {
            if let Err(e) = CheckpointStore::save(&store, name, pos, state).await {
                panic!("checkpoint save failed: {e}");
            }
        }
    };
    save("p", 5, None).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(cp.as_ref().map(|c| c.position), Some(5));
    assert_eq!(cp.and_then(|c| c.state), None);
    save("p", 9, Some(b"{\"total\":3}".to_vec())).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(cp.as_ref().map(|c| c.position), Some(9));
    assert_eq!(cp.and_then(|c| c.state), Some(b"{\"total\":3}".to_vec()));
    save("q", 1, Some(Vec::new())).await;
    let q = CheckpointStore::load(&store, "q").await.ok().flatten();
    assert_eq!(
        q.and_then(|c| c.state),
        Some(Vec::new()),
        "an empty state is not no state"
    );
    save("p", 12, None).await;
    let cp = CheckpointStore::load(&store, "p").await.ok().flatten();
    assert_eq!(
        cp.map(|c| (c.position, c.state)),
        Some((12, None)),
        "saving without state clears it"
    );
}

/// 16 writers on one stream with `Exact` versions: no duplicate, no gap, every write counted.
pub async fn concurrent_appenders_one_stream<S: ConformanceStore>(store: S) {
    const WRITERS: u64 = 16;
    const EACH: u64 = 8;
    let s = stream("contended");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = 0;
            let mut attempts = 0;
            while written < EACH {
                attempts += 1;
                assert!(attempts < 10_000, "writer {w} starved");
                let v = match store.stream_version(&s).await {
                    Ok(v) => v,
                    Err(e) => panic!("stream_version failed: {e}"),
                };
                match store
                    .append(
                        &s,
                        ExpectedVersion::Exact(v),
                        vec![event(w * 1000 + written)],
                    )
                    .await
                {
                    Ok(done) => {
                        assert_eq!(done.version, v + 1);
                        written += 1;
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        assert!(actual > v, "a conflict reports a newer version");
                        tokio::task::yield_now().await;
                    }
                    Err(e) => panic!("append failed: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let all = read_stream(&store, &s, 1, 10_000).await;
    assert_eq!(sequences(&all), (1..=WRITERS * EACH).collect::<Vec<_>>());
    let payloads: HashSet<Vec<u8>> = all.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(
        payloads.len() as u64,
        WRITERS * EACH,
        "an event was written twice"
    );
}

/// 16 writers on different streams, with a reader following the log: the log ends up complete
/// (gapless where promised), and the reader never skips an event.
pub async fn concurrent_appenders_many_streams<S: ConformanceStore>(store: S, caps: Capabilities) {
    const WRITERS: u64 = 16;
    const EACH: u64 = 12;
    let total = (WRITERS * EACH) as usize;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut next = 1;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < total {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "reader timed out at {next}"
                );
                let page = read_all(&store, next, 7).await;
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                for e in page {
                    next = e.position + 1;
                    seen.push(e);
                }
            }
            seen
        })
    };
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream(&format!("writer-{w}"));
            for i in 0..EACH {
                let batch = if i % 3 == 0 {
                    events(i..i + 1)
                } else {
                    vec![event(i)]
                };
                append_ok(&store, &s, ExpectedVersion::Exact(i), batch).await;
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let seen = match reader.await {
        Ok(seen) => seen,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let all = read_all(&store, 0, usize::MAX).await;
    assert_eq!(all.len(), total);
    assert_eq!(seen, all, "the live reader skipped or reordered events");
    if caps.gapless_positions {
        let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
        assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>());
    }
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &all {
        per_stream
            .entry(e.stream.aggregate_id.clone())
            .or_default()
            .push(e.sequence);
    }
    for (id, seqs) in per_stream {
        assert_eq!(
            seqs,
            (1..=EACH).collect::<Vec<_>>(),
            "stream {id} out of order"
        );
    }
}

/// `subscribe()` wakes after an append with a head covering the new event.
pub async fn subscribe_wakes_after_append<S: ConformanceStore>(store: S) {
    let mut rx = store.subscribe();
    let start = *rx.borrow_and_update();
    assert_eq!(start, 0);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            append_ok(&store, &stream("a"), ExpectedVersion::Any, events(0..2)).await
        })
    };
    let woke = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await;
    assert!(
        matches!(woke, Ok(Ok(()))),
        "subscribe() did not wake after an append"
    );
    let done = match writer.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let last = done.last_position().unwrap_or(0);
    let reached = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|h| *h >= last)).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "subscribe() never reached position {last}"
    );
    let late = store.subscribe();
    assert!(
        *late.borrow() >= last,
        "a new subscriber starts at the head"
    );
}

/// Runs one named case with a store from `factory`, or explains why it is skipped.
#[doc(hidden)]
pub async fn run_case<S, G, F, Fut, C, CFut>(name: &str, factory: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Option<(S, G)>>,
    C: FnOnce(S) -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    let Some((store, guard)) = factory().await else {
        eprintln!("conformance case `{name}` skipped: the store factory returned no store");
        return;
    };
    case(store).await;
    drop(guard);
}

/// Writes one `#[tokio::test]` per conformance case for a backend.
///
/// `factory` is a path to an `async fn() -> Option<(S, G)>` that returns a fresh, empty store
/// and a guard kept alive for the test (a temporary directory, a schema to drop, or `()`), or
/// `None` when the backend is unavailable (the case then prints why and passes). Pass
/// `gapless = false` for a backend that documents holes in positions.
///
/// ```ignore
/// async fn memory() -> Option<(es_core::MemoryStore, ())> {
///     Some((es_core::MemoryStore::new(), ()))
/// }
/// es_core::store_conformance_tests!(memory);
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!($factory, gapless = true);
    };
    ($factory:path, gapless = $gapless:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testkit::conformance as c;

            fn caps() -> c::Capabilities {
                c::Capabilities { gapless_positions: $gapless }
            }

            $crate::store_conformance_tests!(@cases $factory;
                append_no_stream_to_new_stream,
                append_any,
                append_exact,
                wrong_expected_version_writes_nothing,
                multi_event_append_is_atomic,
                empty_append_writes_nothing,
                sequences_start_at_one_and_are_gapless,
                read_stream_ranges,
                read_all_ranges,
                read_all_filtered_skips_but_advances,
                unknown_stream_is_empty,
                metadata_and_payload_round_trip,
                snapshots_save_load_prune,
                checkpoints_save_load,
                concurrent_appenders_one_stream,
                subscribe_wakes_after_append
            );
            $crate::store_conformance_tests!(@caps_cases $factory;
                positions_increase_across_streams,
                concurrent_appenders_many_streams
            );
        }
    };
    (@cases $factory:path; $($case:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                c::run_case(stringify!($case), $factory, c::$case).await;
            }
        )+
    };
    (@caps_cases $factory:path; $($case:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                c::run_case(stringify!($case), $factory, |s| c::$case(s, caps())).await;
            }
        )+
    };
}
