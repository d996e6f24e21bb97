//! What is written is what is read back: append results, metadata numbers, timestamps.

use es_core::store::{EventStore, ExpectedVersion, NewEvent, Snapshot, SnapshotStore};

use crate::postgres_common::{s, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_result_matches_what_is_read_back() {
    let (store, _guard) = store("roundtrip").await;
    let events = vec![
        NewEvent::new("Opened", b"{}".to_vec())
            .version(3)
            .metadata("correlation", "c-1")
            .metadata("quote", "\"\\ é"),
        NewEvent::new("Binary", vec![0, 159, 146, 150, 255]),
    ];
    let done = store
        .append(&s("rt"), ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    assert_eq!(done.version, 2);
    let read = store.read_stream(&s("rt"), 1, 10).await.unwrap();
    assert_eq!(read, done.events, "append returns exactly what is stored");
    assert_eq!(store.read_all(0, 10).await.unwrap(), done.events);
    assert_eq!(read[0].event_version, 3);
    assert_eq!(read[1].payload, vec![0, 159, 146, 150, 255]);
    // Positions carry the writing transaction: one transaction, consecutive indexes.
    assert_eq!(read[0].position >> 16, read[1].position >> 16);
    assert_eq!(read[0].position + 1, read[1].position);
    assert_eq!(read[0].position & 0xffff, 1);
}

/// Metadata numbers come back from `jsonb` exactly (floats included, which the default
/// `serde_json` parser may read one ULP off), and given timestamps keep their nanoseconds, also
/// before 1970.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_numbers_and_timestamps_round_trip_exactly() {
    let (store, _guard) = store("numbers").await;
    let mut event = NewEvent::new("Numbers", b"{}".to_vec())
        .metadata("big", u64::MAX)
        .metadata("small", i64::MIN)
        .metadata("tenth", 0.1)
        .metadata("sum", 0.1 + 0.2)
        .metadata("tiny", 5e-324)
        .metadata("huge", f64::MAX)
        .timestamp(chrono::DateTime::from_timestamp(-1, 999_999_999).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..500 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let f = f64::from_bits(x);
        if f.is_finite() {
            event = event.metadata(format!("f{i}"), f);
        }
    }
    let done = store
        .append(
            &s("numbers"),
            ExpectedVersion::NoStream,
            vec![event.clone()],
        )
        .await
        .unwrap();
    let back = store.read_stream(&s("numbers"), 1, 1).await.unwrap();
    assert_eq!(back, done.events);
    assert_eq!(back[0].timestamp, event.timestamp.unwrap());
    for (key, value) in &event.envelope.metadata {
        let got = &back[0].metadata[key];
        match value.as_f64() {
            Some(f) if value.is_f64() => assert_eq!(
                got.as_f64().map(f64::to_bits),
                Some(f.to_bits()),
                "{key}: {value} came back as {got}"
            ),
            _ => assert_eq!(got, value, "{key}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_timestamps_round_trip_exactly() {
    let (store, _guard) = store("snaptime").await;
    let mut snap = Snapshot::new(s("x"), 3, b"state".to_vec());
    snap.timestamp = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
    SnapshotStore::save(&store, snap.clone()).await.unwrap();
    assert_eq!(
        SnapshotStore::load_latest(&store, &s("x")).await.unwrap(),
        Some(snap)
    );
    let mut old = Snapshot::new(s("y"), 1, b"old".to_vec());
    old.timestamp = chrono::DateTime::from_timestamp(-1_000_000, 999_999_999).unwrap();
    SnapshotStore::save(&store, old.clone()).await.unwrap();
    assert_eq!(
        SnapshotStore::load_latest(&store, &s("y")).await.unwrap(),
        Some(old)
    );
}
