//! A model test: random appends against `MemoryStore` and a plain reference model, checking
#![allow(clippy::unwrap_used)]
//! every result and every read.

use std::collections::BTreeMap;

use es_core::StoreError;
use es_core::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Expect {
    Any,
    NoStream,
    /// An exact version: the current one plus this offset (so some are wrong).
    Exact(i8),
}

#[derive(Debug, Clone)]
struct Op {
    stream: u8,
    expect: Expect,
    batch: u8,
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        (-2i8..=2).prop_map(Expect::Exact),
        Just(Expect::Exact(0)),
        Just(Expect::Exact(0)),
    ];
    (0u8..5, expect, 0u8..4).prop_map(|(stream, expect, batch)| Op {
        stream,
        expect,
        batch,
    })
}

/// The reference: the global log as (stream, payload) pairs.
#[derive(Default)]
struct Model {
    log: Vec<(u8, Vec<u8>)>,
    versions: BTreeMap<u8, u64>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let store = MemoryStore::new();
            let mut model = Model::default();
            for (n, op) in ops.iter().enumerate() {
                let stream = StreamId::new("model", format!("s{}", op.stream));
                let current = model.versions.get(&op.stream).copied().unwrap_or(0);
                let expected = match op.expect {
                    Expect::Any => ExpectedVersion::Any,
                    Expect::NoStream => ExpectedVersion::NoStream,
                    Expect::Exact(d) => ExpectedVersion::Exact((current as i64 + d as i64).max(0) as u64),
                };
                let batch: Vec<NewEvent> = (0..op.batch)
                    .map(|i| NewEvent::new("E", format!("{n}-{i}").into_bytes()))
                    .collect();
                let result = store.append(&stream, expected, batch.clone()).await;
                if expected.matches(current) {
                    let done = result.unwrap();
                    prop_assert_eq!(done.version, current + batch.len() as u64);
                    for (i, e) in done.events.iter().enumerate() {
                        prop_assert_eq!(e.sequence, current + 1 + i as u64);
                        prop_assert_eq!(e.position, model.log.len() as u64 + 1 + i as u64);
                    }
                    for e in &batch {
                        model.log.push((op.stream, e.payload.clone()));
                    }
                    model.versions.insert(op.stream, current + batch.len() as u64);
                } else {
                    match result {
                        Err(StoreError::Conflict { expected: e, actual }) => {
                            prop_assert_eq!(e, expected);
                            prop_assert_eq!(actual, current);
                        }
                        other => prop_assert!(false, "expected a conflict, got {:?}", other),
                    }
                }
                // Every read agrees with the model.
                prop_assert_eq!(store.head_position().await.unwrap(), model.log.len() as u64);
                let all = store.read_all(0, usize::MAX).await.unwrap();
                let got: Vec<(u8, Vec<u8>)> = all
                    .iter()
                    .map(|e| (e.stream.aggregate_id[1..].parse().unwrap(), e.payload.clone()))
                    .collect();
                prop_assert_eq!(&got, &model.log);
                let from = (n % 7) as u64;
                let limit = n % 5;
                let page = store.read_all(from, limit).await.unwrap();
                let start = from.saturating_sub(1) as usize;
                let want: Vec<u64> = (start..model.log.len()).take(limit).map(|i| i as u64 + 1).collect();
                prop_assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), want);
                for s in 0u8..5 {
                    let id = StreamId::new("model", format!("s{s}"));
                    let events = store.read_stream(&id, 1, usize::MAX).await.unwrap();
                    let want: Vec<&Vec<u8>> = model.log.iter().filter(|(x, _)| *x == s).map(|(_, p)| p).collect();
                    prop_assert_eq!(events.iter().map(|e| &e.payload).collect::<Vec<_>>(), want);
                    prop_assert_eq!(store.stream_version(&id).await.unwrap(), model.versions.get(&s).copied().unwrap_or(0));
                    let seqs: Vec<u64> = events.iter().map(|e| e.sequence).collect();
                    prop_assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
                }
            }
            Ok(())
        })?;
    }
}
