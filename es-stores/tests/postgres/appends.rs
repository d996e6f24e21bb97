//! Appends: empty ones, the tuned builder, batched and pipelined appends, each decided as if run
//! one after another.

use std::collections::BTreeMap;
use std::time::Duration;

use es_core::store::{EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use es_stores::PostgresStore;

use crate::postgres_common::{
    SchemaGuard, ev, pg_url, pool, s, shared, store, store_alone, unique_schema,
};

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

/// Appends sent one after another without waiting, several to one stream, some expecting the
/// version the one before leaves (a chain, written in one statement), some stale, some expecting
/// any version: each is decided as if they ran one after another, per stream, as a simple model
/// says; and the chains keep their order in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_to_one_stream_are_decided_in_order() {
    pipelined(1, 4).await;
}

/// The same over 40 streams with batches split over two connections (each part of a split
/// batch holds at least 64 appends, and a stream's requests stay in one part).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_appends_in_split_batches_are_decided_in_order() {
    pipelined(2, 40).await;
}

/// A store in a fresh schema on a pool of `connections`, with `lanes` and `max_batch` set.
async fn tuned(
    test: &str,
    connections: u32,
    lanes: usize,
    max_batch: usize,
) -> (PostgresStore, SchemaGuard) {
    let url = pg_url().await;
    let isolation = shared().await;
    let schema = unique_schema(test);
    let guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
        isolation: Some(isolation),
    };
    let store = PostgresStore::builder(pool(&url, connections).await)
        .schema(schema)
        .lanes(lanes)
        .max_batch(max_batch)
        .build()
        .await
        .unwrap();
    (store, guard)
}

async fn pipelined(lanes: usize, stream_count: u64) {
    let (store, guard) = tuned("pipelined", 4, lanes, 4096).await;
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
    let streams: Vec<StreamId> = (0..stream_count).map(|i| s(&format!("p{i}"))).collect();
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
            let k = next(stream_count) as usize;
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
            // Usually pending; ready only when the lane answered between queueing it and
            // this poll's end (a loaded machine can stop this thread right there).
            let early = match append.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => Some(result),
                std::task::Poll::Pending => None,
            };
            appends.push((id, expected, append, early));
        }
        for ((id, expected, append, early), want) in appends.into_iter().zip(expected_results) {
            let result = match early {
                Some(result) => result,
                None => append.await,
            };
            match (result, want) {
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
    // as it has appends. (Split batches make a transaction per part.)
    if lanes > 1 {
        return;
    }
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

/// Appends that could start a second statement beside one in flight, on a pool of one
/// connection: they wait for the lane's connection instead of for one the lane holds (which
/// would end in the pool's acquire timeout, 30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_on_a_one_connection_pool_waits_for_the_lanes_connection() {
    // Batches of 100: while the first is written, 300 appends wait, enough for a second
    // statement beside it.
    let (store, _guard) = tuned("onepool", 1, 2, 100).await;
    let streams: Vec<StreamId> = (0..400).map(|i| s(&format!("o{i}"))).collect();
    let start = std::time::Instant::now();
    let mut appends = Vec::new();
    for (i, stream) in (0u64..).zip(&streams) {
        let mut append = Box::pin(tokio::task::unconstrained(store.append(
            stream,
            ExpectedVersion::NoStream,
            vec![ev(i)],
        )));
        // Polled once: queued at the store before the next one is made.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let early = match append.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => Some(result),
            std::task::Poll::Pending => None,
        };
        appends.push((append, early));
    }
    for (append, early) in appends {
        let result = match early {
            Some(result) => result,
            None => append.await,
        };
        assert_eq!(result.unwrap().version, 1);
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(store.read_all(0, 1_000).await.unwrap().len(), 400);
}

/// An append whose transaction was the only one running (no other transaction anywhere held
/// readers back) is readable when it is answered: the lane moves `subscribe()`'s head itself
/// instead of waiting for the head refresher's round trip (here `visibility_wait(0)`, so the
/// answer does not wait for the refresher either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_alone_is_readable_when_it_is_answered() {
    // Alone among this binary's tests: none of them holds a transaction meanwhile.
    let (_store, guard) = store_alone("alone").await;
    let quick = PostgresStore::builder(pool(&guard.url, 2).await)
        .schema(guard.schema.clone())
        .visibility_wait(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let head = quick.subscribe();
    // Another transaction anywhere on the server (autovacuum's analyze writes statistics) makes
    // an append not alone for a moment, and its answer then comes before the refresher moved
    // the head: so this asks for most of 20 appends, in one of a few attempts. Without the
    // lane moving the head, an answer comes before the refresher's round trip nearly always.
    let mut best = 0;
    for attempt in 0..5u64 {
        let mut readable = 0;
        for i in 0..20u64 {
            let done = quick
                .append(
                    &s(&format!("a{attempt}-{i}")),
                    ExpectedVersion::NoStream,
                    vec![ev(i)],
                )
                .await
                .unwrap();
            if *head.borrow() >= done.events[0].position {
                readable += 1;
            }
        }
        best = best.max(readable);
        if best >= 15 {
            break;
        }
    }
    assert!(
        best >= 15,
        "at most {best} of 20 appends were readable when answered"
    );
}
