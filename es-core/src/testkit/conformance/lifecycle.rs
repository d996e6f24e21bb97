//! Streams that end: soft deletes (tombstones), hard deletes and truncation
//! ([`EventStore::truncate_stream`]), and a model the three are checked against.

use std::collections::BTreeMap;

use crate::store::lifecycle::{self, is_tombstone};
use crate::store::{EventStore, ExpectedVersion, Snapshot, SnapshotStore, StoreError, StreamId};

use super::{
    ConformanceStore, append_ok, event, events, head, read_all, read_stream, sequences, stream,
    version,
};

/// A soft delete appends one tombstone after the stream's events (which stay readable), is
/// idempotent, and touches no other stream; a stream without events cannot be deleted.
pub async fn soft_delete_writes_a_tombstone<S: ConformanceStore>(store: S) {
    let (a, b) = (stream("soft-a"), stream("soft-b"));
    append_ok(&store, &a, ExpectedVersion::NoStream, events(1..4)).await;
    let last = append_ok(&store, &b, ExpectedVersion::NoStream, events(4..5)).await;
    let head_before = head(&store).await;
    let done = match lifecycle::delete_stream(&store, Some(&store), &a, false).await {
        Ok(done) => done,
        Err(e) => panic!("soft delete of {a} failed: {e}"),
    };
    assert_eq!((done.version, done.tombstoned, done.removed), (4, true, 0));
    let read = read_stream(&store, &a, 1, 10).await;
    assert_eq!(sequences(&read), [1, 2, 3, 4], "the events stay readable");
    assert!(is_tombstone(&read[3]), "the last event is the tombstone");
    assert_eq!(
        read[3].position, done.position,
        "the tombstone is in the global log"
    );
    assert!(done.position > last.last_position().unwrap_or(0));
    let all = read_all(&store, 1, 100).await;
    assert_eq!(all.last().map(|e| e.position), Some(done.position));
    assert!(matches!(lifecycle::is_deleted(&store, &a).await, Ok(true)));
    assert!(matches!(lifecycle::is_deleted(&store, &b).await, Ok(false)));
    let again = lifecycle::delete_stream(&store, Some(&store), &a, false).await;
    assert!(
        matches!(&again, Ok(d) if d.version == 4 && !d.tombstoned),
        "deleting a deleted stream again writes nothing: {again:?}"
    );
    assert_eq!(version(&store, &a).await, 4);
    let empty = lifecycle::delete_stream(&store, Some(&store), &stream("soft-none"), false).await;
    assert!(
        matches!(empty, Err(StoreError::InvalidInput(_))),
        "a stream without events: {empty:?}"
    );
    let head_after = head(&store).await;
    assert!(head_after > head_before && head_after >= done.position);
    assert_eq!(
        read_all(&store, 1, 100).await,
        all,
        "nothing else was written"
    );
}

/// Truncation removes the events below a sequence, atomically: positions of the rest do not
/// move, `read_all` continues past the hole (also when a page starts inside it),
/// `read_stream` from 1 starts at the first kept event, versions and the head stay, appends
/// go on, the removal is recorded, and a truncation past the last event is refused.
pub async fn truncate_keeps_positions_and_versions<S: ConformanceStore>(store: S) {
    let (a, b) = (stream("trunc-a"), stream("trunc-b"));
    // a: 1, 2, then 3, 4 after b's first; b: 1, then 2 at the end.
    append_ok(&store, &a, ExpectedVersion::NoStream, events(1..3)).await;
    let b1 = append_ok(&store, &b, ExpectedVersion::NoStream, events(3..4)).await;
    let a34 = append_ok(&store, &a, ExpectedVersion::Exact(2), events(4..6)).await;
    append_ok(&store, &b, ExpectedVersion::Exact(1), events(6..7)).await;
    let before_all = read_all(&store, 1, 100).await;
    let head_before = head(&store).await;
    let first = before_all[0].position;
    let b1 = b1.events[0].position;
    let (a3, a4) = (a34.events[0].position, a34.events[1].position);
    let removed = match store.truncate_stream(&a, 4).await {
        Ok(n) => n,
        Err(e) => panic!("truncate_stream({a}, 4) failed: {e}"),
    };
    assert_eq!(removed, 3, "sequences 1, 2 and 3 of {a}");
    let a_read = read_stream(&store, &a, 1, 10).await;
    assert_eq!(
        sequences(&a_read),
        [4],
        "read_stream from 1 starts at the first kept event"
    );
    assert_eq!(a_read[0].position, a4);
    assert_eq!(version(&store, &a).await, 4, "the version does not change");
    assert_eq!(head(&store).await, head_before, "the head does not change");
    let all = read_all(&store, 1, 100).await;
    let kept: Vec<_> = before_all
        .iter()
        .filter(|e| e.stream != a || e.sequence >= 4)
        .cloned()
        .collect();
    assert_eq!(
        all, kept,
        "the other events are unchanged, at their positions"
    );
    // A page that starts in the hole returns the next kept events, not an empty page.
    let page = read_all(&store, first, 1).await;
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), [b1]);
    let page = read_all(&store, a3, 1).await;
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), [a4]);
    let filtered = store.read_all_filtered(first, 2, |_| true).await;
    match filtered {
        Ok(page) => assert_eq!(
            page.events.iter().map(|e| e.position).collect::<Vec<_>>(),
            [b1, a4],
            "read_all_filtered skips the hole too"
        ),
        Err(e) => panic!("read_all_filtered failed: {e}"),
    }
    let recorded = store.truncations().await;
    assert!(
        matches!(&recorded, Ok(t) if t.len() == 1 && t[0].stream == a && t[0].before == 4),
        "the removal is recorded: {recorded:?}"
    );
    // Past the last event: refused, nothing removed.
    let refused = store.truncate_stream(&b, 3).await;
    assert!(
        matches!(refused, Err(StoreError::InvalidInput(_))),
        "truncating {b} before 3 (version 2): {refused:?}"
    );
    assert_eq!(sequences(&read_stream(&store, &b, 1, 10).await), [1, 2]);
    // Below an earlier truncation: nothing more to remove.
    assert!(matches!(store.truncate_stream(&a, 2).await, Ok(0)));
    // Appends go on from the unchanged version.
    let done = append_ok(&store, &a, ExpectedVersion::Exact(4), vec![event(7)]).await;
    assert_eq!(done.version, 5);
    assert!(done.events[0].position > head_before);
    assert_eq!(sequences(&read_stream(&store, &a, 0, 10).await), [4, 5]);
}

/// A hard delete removes every event but the tombstone and every snapshot of the stream; the
/// version stays (so the id is not reused), other streams and their positions are untouched.
pub async fn hard_delete_removes_events_and_snapshots<S: ConformanceStore>(store: S) {
    let (a, b) = (stream("hard-a"), stream("hard-b"));
    append_ok(&store, &a, ExpectedVersion::NoStream, events(1..3)).await;
    let b1 = append_ok(&store, &b, ExpectedVersion::NoStream, events(3..4)).await;
    append_ok(&store, &a, ExpectedVersion::Exact(2), events(4..5)).await;
    let b1 = b1.events[0].position;
    for v in [1, 3] {
        if let Err(e) =
            SnapshotStore::save(&store, Snapshot::new(a.clone(), v, b"{}".to_vec())).await
        {
            panic!("snapshot save failed: {e}");
        }
    }
    if let Err(e) = SnapshotStore::save(&store, Snapshot::new(b.clone(), 1, b"{}".to_vec())).await {
        panic!("snapshot save failed: {e}");
    }
    let done = match lifecycle::delete_stream(&store, Some(&store), &a, true).await {
        Ok(done) => done,
        Err(e) => panic!("hard delete of {a} failed: {e}"),
    };
    assert_eq!((done.version, done.removed), (4, 3));
    let left = read_stream(&store, &a, 1, 10).await;
    assert!(
        left.len() == 1 && is_tombstone(&left[0]) && left[0].sequence == 4,
        "only the tombstone is left: {left:?}"
    );
    assert_eq!(version(&store, &a).await, 4);
    assert!(matches!(
        SnapshotStore::load_latest(&store, &a).await,
        Ok(None)
    ));
    assert!(matches!(
        SnapshotStore::load_latest(&store, &b).await,
        Ok(Some(_))
    ));
    let all = read_all(&store, 1, 100).await;
    assert_eq!(
        all.iter()
            .map(|e| (e.position, e.stream.clone()))
            .collect::<Vec<_>>(),
        [(b1, b.clone()), (done.position, a.clone())],
        "the other stream's event keeps its position"
    );
    // Hard-deleting a soft-deleted stream completes the removal; again changes nothing.
    let again = lifecycle::delete_stream(&store, Some(&store), &a, true).await;
    assert!(matches!(again, Ok(d) if d.removed == 0 && !d.tombstoned));
}

/// One step of [`lifecycle_matches_a_model`].
#[derive(Debug, Clone, Copy)]
pub enum LifecycleOp {
    /// Append `count` events to stream number `stream`.
    Append {
        /// The stream's number.
        stream: u8,
        /// How many events (0..=3).
        count: u8,
    },
    /// Soft-delete the stream (when it has events).
    SoftDelete {
        /// The stream's number.
        stream: u8,
    },
    /// Hard-delete the stream (when it has events).
    HardDelete {
        /// The stream's number.
        stream: u8,
    },
    /// Truncate the stream before the sequence that is `at` percent of its version (at least 1).
    Truncate {
        /// The stream's number.
        stream: u8,
        /// Where, in percent of the version.
        at: u8,
    },
}

/// Runs `ops` on `store` (appends use `ExpectedVersion::Any`; deletes and truncates of a
/// stream without events are skipped) and checks `read_all`, `read_stream`, `stream_version`
/// and `head_position` against a model after every step: a list of the kept events with their
/// positions, and each stream's version.
pub async fn lifecycle_ops_match_the_model<S: EventStore + SnapshotStore>(
    store: &S,
    ops: &[LifecycleOp],
) {
    // The model: position → (stream number, sequence, tombstone?).
    let mut log: BTreeMap<u64, (u8, u64, bool)> = BTreeMap::new();
    let mut versions = [0u64; 4];
    // The last position written: the head is at least that (PostgreSQL's may be higher).
    let mut head_position = 0;
    let name = |n: u8| stream(&format!("model-{n}"));
    for (step, op) in ops.iter().enumerate() {
        match *op {
            LifecycleOp::Append { stream: n, count } => {
                let n = n % 4;
                let s = name(n);
                let batch = events(0..u64::from(count % 4));
                let done = append_ok(store, &s, ExpectedVersion::Any, batch).await;
                for e in &done.events {
                    log.insert(e.position, (n, e.sequence, false));
                    head_position = e.position;
                }
                versions[n as usize] = done.version;
            }
            LifecycleOp::SoftDelete { stream: n } | LifecycleOp::HardDelete { stream: n } => {
                let n = n % 4;
                if versions[n as usize] == 0 {
                    continue;
                }
                let hard = matches!(op, LifecycleOp::HardDelete { .. });
                let done = match lifecycle::delete_stream(store, Some(store), &name(n), hard).await
                {
                    Ok(done) => done,
                    Err(e) => panic!("step {step} {op:?}: {e}"),
                };
                if done.tombstoned {
                    head_position = done.position;
                    log.insert(done.position, (n, done.version, true));
                    versions[n as usize] = done.version;
                }
                if hard {
                    log.retain(|_, (s, seq, _)| *s != n || *seq >= done.version);
                }
            }
            LifecycleOp::Truncate { stream: n, at } => {
                let n = n % 4;
                let v = versions[n as usize];
                if v == 0 {
                    continue;
                }
                let before = (v * u64::from(at % 101) / 100).max(1);
                let head_before = head(store).await;
                if let Err(e) = store.truncate_stream(&name(n), before).await {
                    panic!("step {step} {op:?}: truncate before {before}: {e}");
                }
                assert_eq!(head(store).await, head_before, "a truncation moves no head");
                log.retain(|_, (s, seq, _)| *s != n || *seq >= before);
            }
        }
        let stored = read_all(store, 1, 10_000).await;
        let model: Vec<(u64, StreamId, u64, bool)> = log
            .iter()
            .map(|(p, (n, seq, t))| (*p, name(*n), *seq, *t))
            .collect();
        let got: Vec<(u64, StreamId, u64, bool)> = stored
            .iter()
            .map(|e| (e.position, e.stream.clone(), e.sequence, is_tombstone(e)))
            .collect();
        assert_eq!(got, model, "read_all after step {step} ({op:?})");
        assert!(head(store).await >= head_position, "head after step {step}");
        for n in 0..4u8 {
            let s = name(n);
            assert_eq!(
                version(store, &s).await,
                versions[n as usize],
                "{s} after step {step}"
            );
            let expected: Vec<u64> = log
                .values()
                .filter(|(m, _, _)| *m == n)
                .map(|(_, seq, _)| *seq)
                .collect();
            let read = read_stream(store, &s, 1, 10_000).await;
            assert_eq!(
                sequences(&read),
                expected,
                "read_stream({s}) after step {step}"
            );
        }
    }
}

/// [`lifecycle_ops_match_the_model`] on a fixed pseudo-random run of 60 steps.
pub async fn lifecycle_matches_a_model<S: ConformanceStore>(store: S) {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below) as u8
    };
    let ops: Vec<LifecycleOp> = (0..60)
        .map(|_| match next(10) {
            0 => LifecycleOp::SoftDelete { stream: next(4) },
            1 => LifecycleOp::HardDelete { stream: next(4) },
            2 | 3 => LifecycleOp::Truncate {
                stream: next(4),
                at: next(101),
            },
            _ => LifecycleOp::Append {
                stream: next(4),
                count: next(4),
            },
        })
        .collect();
    lifecycle_ops_match_the_model(&store, &ops).await;
}
