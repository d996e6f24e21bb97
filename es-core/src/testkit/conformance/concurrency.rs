//! Concurrent writers, on one stream and on many, with a live reader.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::store::{ExpectedVersion, StoreError};

use super::{
    Capabilities, ConformanceStore, append_ok, event, events, read_all, read_stream, sequences,
    stream,
};

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
