//! Tests of the LMDB store that reach into its parts.

use super::LmdbStore;
#[cfg(target_os = "linux")]
use super::pages::tests::resident;

/// A whole scan of a 4 MiB log keeps under 1 MiB of the map resident, and returns the same
/// events as written; after every page was released, a scan reads them all again the same.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_scan_releases_the_pages_it_read_and_reads_the_same_events()
-> Result<(), Box<dyn std::error::Error>> {
    use es_core::store::{BatchAppend, EventStore, ExpectedVersion, NewEvent, StreamId};

    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options()
        .release_scanned_pages(true)
        .open(dir.path())?;
    let streams = 50u64;
    let mut written = Vec::new();
    for round in 0..160u64 {
        let batch = (0..streams)
            .map(|s| {
                let payload = format!(r#"{{"n":{round},"pad":"{}"}}"#, "x".repeat(480));
                let event = NewEvent::new("Padded", payload.into_bytes()).metadata("s", s);
                written.push((s, round + 1, event.clone()));
                BatchAppend::new(
                    StreamId::new("t", format!("s{s}")),
                    ExpectedVersion::Exact(round),
                    vec![event],
                )
            })
            .collect();
        for outcome in store.append_many(batch).await? {
            outcome?;
        }
    }
    let data_size = std::fs::metadata(dir.path().join("data.mdb"))?.len();
    assert!(data_size > 4 << 20, "{data_size}");

    let first = store.read_all(1, usize::MAX).await?;
    let after_scan = resident(&store.inner.scanned_pages);
    assert!(
        after_scan < 1 << 20,
        "{after_scan} bytes of the map resident"
    );
    assert_eq!(first.len(), written.len());
    for (event, (s, sequence, new)) in first.iter().zip(&written) {
        assert_eq!(event.stream, StreamId::new("t", format!("s{s}")));
        assert_eq!(event.sequence, *sequence);
        assert_eq!(event.payload, new.payload);
        assert_eq!(event.metadata, new.envelope.metadata);
    }

    store
        .inner
        .scanned_pages
        .release_all(&store.inner.resize_gate);
    assert!(resident(&store.inner.scanned_pages) < 64 << 10);
    let mut again = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 1000).await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        again.extend(page);
    }
    assert_eq!(again, first);
    Ok(())
}

/// A read that lands between the commit that wrote a stream's pending index entries to the
/// databases and their removal from memory finds them in both places: it takes each event once,
/// in sequence order.
#[tokio::test]
async fn entries_both_indexed_and_still_pending_are_read_once()
-> Result<(), Box<dyn std::error::Error>> {
    use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};

    let dir = tempfile::tempdir()?;
    // The index is written in each commit, so nothing stays pending by itself.
    let store = LmdbStore::options().index_batch(0).open(dir.path())?;
    let stream = StreamId::new("t", "a");
    let events = (0..3)
        .map(|n| NewEvent::new("E", format!("{{\"n\":{n}}}").into_bytes()))
        .collect();
    store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await?;
    // The window: the same three entries (sequences 1 to 3, positions 1 to 3) still pending.
    store
        .inner
        .pending
        .write()
        .add(&super::codec::stream_key(&stream), 1, 1, 3);
    let sequences = |events: Vec<es_core::store::RecordedEvent>| -> Vec<(u64, u64)> {
        events.iter().map(|e| (e.sequence, e.position)).collect()
    };
    assert_eq!(
        sequences(store.read_stream(&stream, 1, 100).await?),
        [(1, 1), (2, 2), (3, 3)]
    );
    assert_eq!(sequences(store.read_stream(&stream, 2, 1).await?), [(2, 2)]);
    assert_eq!(sequences(store.read_stream(&stream, 3, 5).await?), [(3, 3)]);
    assert_eq!(store.stream_version(&stream).await?, 3);
    assert_eq!(store.stream_heads(None, 10)?, [(stream.clone(), 3)]);
    Ok(())
}

#[tokio::test]
async fn sweeps_keep_up_while_new_streams_keep_arriving() -> Result<(), Box<dyn std::error::Error>>
{
    use es_core::store::{EventStore, ExpectedVersion, NewEvent, StreamId};

    const BATCH: usize = 8;
    let dir = tempfile::tempdir()?;
    let store = LmdbStore::options().index_batch(BATCH).open(dir.path())?;
    // One event per commit, to streams in a scattered order, with a new stream every third
    // append: a sweep takes the keys there are when it begins, and streams that come later
    // must be reached by a later sweep, or the pending entries would grow until a commit has
    // to write them all (at four batches).
    let mut versions = std::collections::BTreeMap::<u64, u64>::new();
    let mut most = 0;
    for i in 0..600u64 {
        let s = if i % 3 == 0 { 1000 + i } else { (i * 7) % 97 };
        let stream = StreamId::new("t", format!("s{s:05}"));
        let version = versions.entry(s).or_insert(0);
        store
            .append(
                &stream,
                ExpectedVersion::Exact(*version),
                vec![NewEvent::new("E", format!("{{\"i\":{i}}}").into_bytes())],
            )
            .await?;
        *version += 1;
        most = most.max(store.inner.pending.read().len());
    }
    assert!(
        most < 4 * BATCH,
        "{most} entries waited at once: the sweeps fell behind the new streams until a commit \
         had to write every pending entry"
    );
    for (s, version) in &versions {
        let stream = StreamId::new("t", format!("s{s:05}"));
        assert_eq!(store.stream_version(&stream).await?, *version, "{stream}");
        let read = store.read_stream(&stream, 1, 1000).await?;
        let sequences: Vec<u64> = read.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, (1..=*version).collect::<Vec<_>>(), "{stream}");
    }
    Ok(())
}
