//! Batches of appends (`EventStore::append_many`): decided in order, each append on its own,
//! positions in batch order, an invalid append refusing the whole batch.

use std::collections::HashMap;

use crate::store::{
    AppendResult, BatchAppend, BatchOutcome, ExpectedVersion, NewEvent, StoreError, StreamId,
};

use super::{ConformanceStore, event, events, head, read_all, read_stream, stream, version};

async fn append_many_ok<S: ConformanceStore>(store: &S, batch: Vec<BatchAppend>) -> BatchOutcome {
    let appends = batch.len();
    match store.append_many(batch).await {
        Ok(outcomes) => {
            assert_eq!(
                outcomes.len(),
                appends,
                "one outcome per append of the batch"
            );
            outcomes
        }
        Err(e) => panic!("append_many of {appends} appends failed: {e}"),
    }
}

fn written(outcome: &Result<AppendResult, StoreError>, what: &str) -> AppendResult {
    match outcome {
        Ok(done) => done.clone(),
        Err(e) => panic!("{what}: expected the append to be written, got {e}"),
    }
}

fn conflict(outcome: &Result<AppendResult, StoreError>, expected: ExpectedVersion, actual: u64) {
    match outcome {
        Err(StoreError::Conflict {
            expected: e,
            actual: a,
        }) => {
            assert_eq!(*e, expected, "the conflict reports the expected version");
            assert_eq!(*a, actual, "the conflict reports the actual version");
        }
        other => panic!("expected Conflict {{ {expected:?}, actual {actual} }}, got {other:?}"),
    }
}

/// A batch spanning several streams, with several appends of one stream, conflicts and an
/// empty append, is decided in order as if each append ran after the ones before it; the
/// written events get positions in batch order.
pub async fn append_many_decides_in_order<S: ConformanceStore>(store: S) {
    let (a, b, c, d) = (stream("a"), stream("b"), stream("c"), stream("d"));
    append_ok_any(&store, &d, 2).await;
    let head_before = head(&store).await;
    let batch = vec![
        BatchAppend::new(a.clone(), ExpectedVersion::NoStream, events(0..2)),
        BatchAppend::new(b.clone(), ExpectedVersion::NoStream, vec![event(2)]),
        // Sees the first append of the batch.
        BatchAppend::new(a.clone(), ExpectedVersion::Exact(2), vec![event(3)]),
        BatchAppend::new(c.clone(), ExpectedVersion::Exact(3), vec![event(4)]),
        // Expects what `a` was before the append above: a conflict.
        BatchAppend::new(a.clone(), ExpectedVersion::Exact(2), vec![event(5)]),
        BatchAppend::new(b.clone(), ExpectedVersion::Exact(1), Vec::new()),
        BatchAppend::new(d.clone(), ExpectedVersion::Any, events(6..8)),
        BatchAppend::new(a.clone(), ExpectedVersion::Exact(3), vec![event(8)]),
    ];
    let outcomes = append_many_ok(&store, batch).await;
    assert_eq!(written(&outcomes[0], "a: 2 events").version, 2);
    assert_eq!(written(&outcomes[1], "b: 1 event").version, 1);
    let third = written(&outcomes[2], "a after the batch's first append");
    assert_eq!(third.version, 3);
    assert_eq!(third.events[0].sequence, 3);
    conflict(&outcomes[3], ExpectedVersion::Exact(3), 0);
    conflict(&outcomes[4], ExpectedVersion::Exact(2), 3);
    let empty = written(&outcomes[5], "an empty append");
    assert_eq!((empty.version, empty.events.len()), (1, 0));
    assert_eq!(written(&outcomes[6], "d, any version").version, 4);
    assert_eq!(written(&outcomes[7], "a after the conflict").version, 4);

    // Positions follow the batch order, and the log holds exactly the written events.
    let recorded: Vec<_> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .flat_map(|done| done.events.clone())
        .collect();
    assert_eq!(recorded.len(), 7);
    assert!(
        recorded.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase in batch order"
    );
    assert!(recorded[0].position > head_before);
    let log = read_all(&store, head_before + 1, 100).await;
    assert_eq!(
        log, recorded,
        "the log holds the batch's events, in batch order"
    );
    let payloads: Vec<_> = recorded.iter().map(|e| e.payload.clone()).collect();
    let expected: Vec<_> = [0, 1, 2, 3, 6, 7, 8]
        .into_iter()
        .map(|n| event(n).payload)
        .collect();
    assert_eq!(payloads, expected);
    for (s, v) in [(&a, 4), (&b, 1), (&c, 0), (&d, 4)] {
        assert_eq!(version(&store, s).await, v, "version of {s}");
    }
    let a_events = read_stream(&store, &a, 1, 10).await;
    assert_eq!(
        a_events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

async fn append_ok_any<S: ConformanceStore>(store: &S, s: &StreamId, n: u64) {
    if let Err(e) = store.append(s, ExpectedVersion::Any, events(0..n)).await {
        panic!("append to {s} failed: {e}");
    }
}

/// Two batches for one stream: the second continues where the first left it, and one that
/// expects the old version conflicts without touching the others.
pub async fn append_many_two_batches_one_stream<S: ConformanceStore>(store: S) {
    let s = stream("twice");
    let first = append_many_ok(
        &store,
        vec![
            BatchAppend::new(s.clone(), ExpectedVersion::NoStream, events(0..3)),
            BatchAppend::new(s.clone(), ExpectedVersion::Exact(3), events(3..4)),
        ],
    )
    .await;
    assert_eq!(written(&first[1], "chained append").version, 4);
    let other = stream("other");
    let second = append_many_ok(
        &store,
        vec![
            BatchAppend::new(s.clone(), ExpectedVersion::Exact(3), vec![event(9)]),
            BatchAppend::new(other.clone(), ExpectedVersion::NoStream, vec![event(10)]),
            BatchAppend::new(s.clone(), ExpectedVersion::Exact(4), events(4..6)),
        ],
    )
    .await;
    conflict(&second[0], ExpectedVersion::Exact(3), 4);
    assert_eq!(written(&second[1], "other stream").version, 1);
    let last = written(&second[2], "second batch");
    assert_eq!(
        last.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [5, 6]
    );
    assert!(
        first[1].as_ref().ok().and_then(AppendResult::last_position) < last.first_position(),
        "the second batch comes after the first"
    );
    let all = read_stream(&store, &s, 1, 100).await;
    let expected: Vec<_> = [0, 1, 2, 3, 4, 5]
        .into_iter()
        .map(|n| event(n).payload)
        .collect();
    assert_eq!(
        all.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(append_many_ok(&store, Vec::new()).await.is_empty());
}

/// A batch holding one invalid append (a bad envelope, a bad stream id) is refused as a
/// whole with `InvalidInput` naming that append, before anything is written.
pub async fn append_many_refuses_an_invalid_batch<S: ConformanceStore>(store: S) {
    let good = stream("good");
    let bad_envelope = NewEvent::new("Bad", b"{}".to_vec()).tag("a\0b");
    let cases = [
        (
            "a NUL in a tag",
            BatchAppend::new(stream("bad"), ExpectedVersion::Any, vec![bad_envelope]),
        ),
        (
            "an empty stream id",
            BatchAppend::new(
                StreamId::new("conformance", ""),
                ExpectedVersion::Any,
                vec![event(1)],
            ),
        ),
    ];
    for (what, bad) in cases {
        let batch = vec![
            BatchAppend::new(good.clone(), ExpectedVersion::Any, vec![event(0)]),
            bad,
            BatchAppend::new(good.clone(), ExpectedVersion::Any, vec![event(2)]),
        ];
        match store.append_many(batch).await {
            Err(StoreError::InvalidInput(message)) => {
                assert!(
                    message.contains("append 1"),
                    "{what}: names the append: {message}"
                );
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert_eq!(head(&store).await, 0, "{what}: nothing was written");
        assert_eq!(
            version(&store, &good).await,
            0,
            "{what}: nothing was written"
        );
    }
}

/// Random batches against a model (a map of stream versions and the log as a list): every
/// outcome, every version and the whole log match what running the appends one by one would
/// give.
pub async fn append_many_matches_a_model<S: ConformanceStore>(store: S) {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let streams: Vec<StreamId> = (0..5).map(|i| stream(&format!("model-{i}"))).collect();
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut log: Vec<(StreamId, u64, Vec<u8>)> = Vec::new();
    let mut n = 0u64;
    for round in 0..12 {
        let mut batch = Vec::new();
        for _ in 0..=next(40) {
            let s = streams[next(5) as usize].clone();
            let current = versions.get(&s).copied().unwrap_or(0);
            // Mostly right (so chains form), sometimes wrong or any.
            let expected = match next(10) {
                0 => ExpectedVersion::Any,
                1 => ExpectedVersion::Exact(current + 1),
                2 if current > 0 => ExpectedVersion::Exact(current - 1),
                3 if current == 0 => ExpectedVersion::NoStream,
                _ => ExpectedVersion::Exact(current),
            };
            let count = next(3);
            let batch_events: Vec<NewEvent> = (0..count)
                .map(|_| {
                    n += 1;
                    event(n)
                })
                .collect();
            // The model: decided against the versions after the appends before it.
            if expected.matches(current) {
                for (i, e) in batch_events.iter().enumerate() {
                    log.push((s.clone(), current + 1 + i as u64, e.payload.clone()));
                }
                versions.insert(s.clone(), current + count);
            }
            batch.push((s, expected, current, batch_events));
        }
        let outcomes = append_many_ok(
            &store,
            batch
                .iter()
                .map(|(s, e, _, ev)| BatchAppend::new(s.clone(), *e, ev.clone()))
                .collect(),
        )
        .await;
        for ((s, expected, current, ev), outcome) in batch.iter().zip(&outcomes) {
            if expected.matches(*current) {
                let done = written(outcome, &format!("round {round}, {s}"));
                assert_eq!(done.version, current + ev.len() as u64);
            } else {
                conflict(outcome, *expected, *current);
            }
        }
    }
    let stored = read_all(&store, 1, 10_000).await;
    let stored: Vec<_> = stored
        .into_iter()
        .map(|e| (e.stream, e.sequence, e.payload))
        .collect();
    assert_eq!(stored, log, "the log is what the model wrote, in order");
    for s in &streams {
        let v = versions.get(s).copied().unwrap_or(0);
        assert_eq!(version(&store, s).await, v, "version of {s}");
    }
}
