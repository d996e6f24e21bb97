//! `append_many`'s bulk path (binary `COPY`): envelopes, splitting, streams that moved on.

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use es_stores::PostgresStore;

use crate::postgres_common::{ev, s, store};

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
