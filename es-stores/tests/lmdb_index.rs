//! The LMDB store's stream index written behind the log (`LmdbOptions::index_batch`): reads
//! of streams, versions and stream heads agree with a simple model at every point of the
//! sweeps that write it, across truncations and reopens, and readers running beside appenders
//! always see gapless streams holding every acknowledged event.
#![cfg(feature = "lmdb")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};
use es_stores::LmdbStore;
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn stream(n: u8) -> StreamId {
    StreamId::new("ledger", format!("s-{n}"))
}

fn events(count: u8, tag: u64) -> Vec<NewEvent> {
    (0..count)
        .map(|k| NewEvent::new("Added", format!("{{\"tag\":{tag},\"k\":{k}}}").into_bytes()))
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    /// `count` events (0 to 3) to stream `s`, as one append.
    Append { s: u8, count: u8 },
    /// Several appends in one `append_many`.
    Many(Vec<(u8, u8)>),
    /// Remove the events of stream `s` below `before`.
    Truncate { s: u8, before: u64 },
    /// Read stream `s` from `from`, at most `limit` events.
    Read { s: u8, from: u64, limit: usize },
    /// Close the store and open it again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 0u8..4).prop_map(|(s, count)| Op::Append { s, count }),
        2 => proptest::collection::vec((0u8..6, 1u8..3), 1..4).prop_map(Op::Many),
        1 => (0u8..6, 0u64..6).prop_map(|(s, before)| Op::Truncate { s, before }),
        3 => (0u8..6, 0u64..12, 1usize..6).prop_map(|(s, from, limit)| Op::Read { s, from, limit }),
        1 => Just(Op::Reopen),
    ]
}

/// What the model holds of one stream: its version and the positions of its events still
/// there, by sequence.
#[derive(Default)]
struct Model {
    streams: BTreeMap<u8, (u64, BTreeMap<u64, u64>)>,
    head: u64,
}

impl Model {
    fn append(&mut self, s: u8, count: u8) {
        let (version, events) = self.streams.entry(s).or_default();
        for _ in 0..count {
            *version += 1;
            self.head += 1;
            events.insert(*version, self.head);
        }
    }
}

/// Checks every stream's version and events, and the stream heads, against the model.
async fn check_all(store: &LmdbStore, model: &Model) -> TestResult {
    for n in 0..6 {
        let (version, events) = model.streams.get(&n).cloned().unwrap_or_default();
        assert_eq!(
            store.stream_version(&stream(n)).await?,
            version,
            "version of {n}"
        );
        let read: Vec<(u64, u64)> = store
            .read_stream(&stream(n), 1, 100)
            .await?
            .iter()
            .map(|e| (e.sequence, e.position))
            .collect();
        let expected: Vec<(u64, u64)> = events.into_iter().collect();
        assert_eq!(read, expected, "events of {n}");
    }
    let heads = store.stream_heads(None, 100)?;
    let expected: Vec<(StreamId, u64)> = model
        .streams
        .iter()
        .filter(|(_, (version, _))| *version > 0)
        .map(|(n, (version, _))| (stream(*n), *version))
        .collect();
    assert_eq!(heads.len(), expected.len(), "{heads:?}");
    for (s, v) in &expected {
        assert!(heads.contains(&(s.clone(), *v)), "{s} at {v} in {heads:?}");
    }
    // Paging by `after` gives the same heads, in the same order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.stream_heads(after.as_ref(), 2)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, heads, "paged heads");
    Ok(())
}

async fn run(batch: usize, ops: &[Op]) -> TestResult {
    let dir = tempfile::tempdir()?;
    let open = || LmdbStore::options().index_batch(batch).open(dir.path());
    let mut store = open()?;
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Append { s, count } => {
                let version = model.streams.get(s).map_or(0, |(v, _)| *v);
                let done = store
                    .append(
                        &stream(*s),
                        ExpectedVersion::Exact(version),
                        events(*count, i as u64),
                    )
                    .await?;
                model.append(*s, *count);
                assert_eq!(done.version, model.streams[s].0);
            }
            Op::Many(appends) => {
                let batch = appends
                    .iter()
                    .enumerate()
                    .map(|(k, (s, count))| {
                        es_core::store::BatchAppend::new(
                            stream(*s),
                            ExpectedVersion::Any,
                            events(*count, (i * 10 + k) as u64),
                        )
                    })
                    .collect();
                for outcome in store.append_many(batch).await? {
                    outcome?;
                }
                for (s, count) in appends {
                    model.append(*s, *count);
                }
            }
            Op::Truncate { s, before } => {
                let version = model.streams.get(s).map_or(0, |(v, _)| *v);
                let result = store.truncate_stream(&stream(*s), *before).await;
                if *before > version {
                    assert!(
                        result.is_err(),
                        "truncating {s} before {before} past {version}"
                    );
                } else {
                    result?;
                    if let Some((_, events)) = model.streams.get_mut(s) {
                        events.retain(|sequence, _| sequence >= before);
                    }
                }
            }
            Op::Read { s, from, limit } => {
                let read: Vec<(u64, u64)> = store
                    .read_stream(&stream(*s), *from, *limit)
                    .await?
                    .iter()
                    .map(|e| (e.sequence, e.position))
                    .collect();
                let expected: Vec<(u64, u64)> = model
                    .streams
                    .get(s)
                    .map(|(_, events)| {
                        events
                            .range((*from).max(1)..)
                            .take(*limit)
                            .map(|(s, p)| (*s, *p))
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(read, expected, "read {s} from {from} limit {limit}");
            }
            Op::Reopen => {
                store.close().await?;
                store = open()?;
            }
        }
        check_all(&store, &model).await?;
    }
    store.close().await?;
    let store = open()?;
    check_all(&store, &model).await?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn reads_agree_with_the_model_while_the_index_is_written_behind(
        batch in prop_oneof![Just(0usize), 1usize..10, Just(65_536usize)],
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(batch, &ops)).unwrap();
    }
}

/// Appenders on many streams and readers beside them, the index written behind in small
/// sweeps: every read gives a stream's events from sequence 1 without a gap, and at least
/// the events acknowledged before the read started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_beside_appenders_see_gapless_streams_with_every_acknowledged_event() -> TestResult
{
    const STREAMS: u8 = 24;
    const APPENDS: u64 = 300;
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options().index_batch(16).open(dir.path())?;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..STREAMS).map(|_| AtomicU64::new(0)).collect());
    let mut appenders = Vec::new();
    for w in 0..4u8 {
        let (store, acked) = (store.clone(), acked.clone());
        appenders.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                let s = ((i * 7 + u64::from(w) * 5) % u64::from(STREAMS)) as u8;
                let done = store
                    .append(
                        &stream(s),
                        ExpectedVersion::Any,
                        events(1 + (i % 3) as u8, i),
                    )
                    .await?;
                acked[usize::from(s)].fetch_max(done.version, Ordering::SeqCst);
            }
            Ok::<(), es_core::store::StoreError>(())
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2u8 {
        let (store, acked) = (store.clone(), acked.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            for i in 0..2_000u64 {
                let s = ((i + u64::from(r)) % u64::from(STREAMS)) as u8;
                let floor = acked[usize::from(s)].load(Ordering::SeqCst);
                let version = store.stream_version(&stream(s)).await?;
                let events = store.read_stream(&stream(s), 1, 10_000).await?;
                for (k, event) in events.iter().enumerate() {
                    assert_eq!(event.sequence, k as u64 + 1, "gapless stream {s}");
                }
                assert!(
                    version >= floor,
                    "version {version} of {s} below acknowledged {floor}"
                );
                assert!(
                    events.len() as u64 >= version,
                    "{s}: read {} events after seeing version {version}",
                    events.len()
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
            Ok::<u64, es_core::store::StoreError>(reads)
        }));
    }
    for appender in appenders {
        appender.await??;
    }
    for reader in readers {
        assert_eq!(reader.await??, 2_000);
    }
    for s in 0..STREAMS {
        let version = acked[usize::from(s)].load(Ordering::SeqCst);
        assert_eq!(store.stream_version(&stream(s)).await?, version);
        assert_eq!(
            store.read_stream(&stream(s), 1, 10_000).await?.len() as u64,
            version
        );
    }
    Ok(())
}
