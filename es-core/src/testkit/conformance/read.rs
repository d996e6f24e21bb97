//! Reads: ranges of a stream and of the log, filtered pages, unknown streams, exact round trips.

use crate::store::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};

use super::{
    ConformanceStore, append_ok, events, head, read_all, read_stream, sequences, stream, version,
};

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
            assert_eq!(got.metadata, want.envelope.metadata);
            assert_eq!(
                got.payload, want.payload,
                "payload of {} changed",
                want.event_type
            );
        }
    }
}
