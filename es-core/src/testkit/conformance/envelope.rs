//! The event envelope: ids, tags, JSON metadata and given timestamps are kept exactly.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::store::{ExpectedVersion, NewEvent, RecordedEvent, StoreError, StreamId};

use super::{ConformanceStore, append_ok, head, read_all, read_stream, stream, version};

/// Compares everything a writer gives with what a reader gets back.
fn assert_envelope(got: &RecordedEvent, want: &NewEvent, what: &str) {
    let name = &want.event_type;
    assert_eq!(got.event_type, want.event_type, "{what}: type");
    assert_eq!(
        got.command_id, want.envelope.command_id,
        "{what}: command id of {name}"
    );
    assert_eq!(
        got.correlation_id, want.envelope.correlation_id,
        "{what}: correlation id of {name}"
    );
    assert_eq!(
        got.causation_id, want.envelope.causation_id,
        "{what}: causation id of {name}"
    );
    assert_eq!(got.tags, want.envelope.tags, "{what}: tags of {name}");
    assert_eq!(
        got.metadata, want.envelope.metadata,
        "{what}: metadata of {name}"
    );
    assert_eq!(got.payload, want.payload, "{what}: payload of {name}");
    if let Some(at) = want.timestamp {
        assert_eq!(
            got.timestamp, at,
            "{what}: a given timestamp of {name} is kept verbatim"
        );
    }
}

/// A timestamp with nanoseconds that no coarser clock would produce.
fn odd_time() -> DateTime<Utc> {
    match Utc.with_ymd_and_hms(2001, 2, 3, 4, 5, 6) {
        chrono::LocalResult::Single(t) => t + chrono::Duration::nanoseconds(123_456_789),
        _ => panic!("a fixed date is valid"),
    }
}

/// Command, correlation and causation ids, several tags, nested JSON metadata and a given
/// timestamp are read back exactly, by every read, next to an event that has none of them.
pub async fn envelope_round_trips<S: ConformanceStore>(store: S) {
    let s = stream("envelope");
    let full = NewEvent::new("Full", br#"{"n":1}"#.to_vec())
        .command_id("cmd-7")
        .correlation_id("order-42")
        .causation_id("evt-3")
        .tag("vip")
        .tag("eu")
        .tag("vip-2 ü")
        .metadata("ip", "10.0.0.1")
        .metadata("attempt", 3)
        .metadata("ratio", 0.25)
        .metadata("flags", json!([true, false, null]))
        .metadata(
            "caller",
            json!({"user": "ann", "roles": ["a", "b"], "deep": {"x": -1}}),
        )
        .timestamp(odd_time());
    let bare = NewEvent::new("Bare", br#"{"n":2}"#.to_vec());
    let same_ids = NewEvent::new("SameIds", br#"{"n":3}"#.to_vec())
        .command_id("cmd-8")
        .correlation_id("cmd-8")
        .causation_id("cmd-8")
        .timestamp(odd_time() + chrono::Duration::days(400));
    let only_causation = NewEvent::new("OnlyCausation", b"[]".to_vec()).causation_id("c");
    let batch = vec![full, bare, same_ids, only_causation];
    let before = Utc::now() - chrono::Duration::seconds(5);
    let done = append_ok(&store, &s, ExpectedVersion::NoStream, batch.clone()).await;
    for (what, stored) in [
        ("append result", done.events),
        ("read_stream", read_stream(&store, &s, 1, 10).await),
        ("read_all", read_all(&store, 0, 10).await),
    ] {
        assert_eq!(stored.len(), batch.len(), "{what}: every event");
        for (got, want) in stored.iter().zip(&batch) {
            assert_envelope(got, want, what);
        }
        let bare = &stored[1];
        assert!(
            bare.timestamp >= before,
            "{what}: an event without a timestamp gets the store's time, got {}",
            bare.timestamp
        );
    }
}

/// An id or tag that is empty or too long, or metadata holding a NUL, is refused with
/// `InvalidInput` and nothing of the append is written; ids and tags at the limits round-trip.
pub async fn invalid_envelopes_are_refused<S: ConformanceStore>(store: S) {
    let s = stream("bad-envelope");
    let ok = || NewEvent::new("Ok", b"{}".to_vec());
    let long_id = "i".repeat(NewEvent::MAX_ID_LEN + 1);
    let long_tag = "t".repeat(NewEvent::MAX_TAG_LEN + 1);
    let bad = [
        ("empty command id", ok().command_id("")),
        ("empty correlation id", ok().correlation_id("")),
        ("empty causation id", ok().causation_id("")),
        ("empty tag", ok().tag("")),
        ("long command id", ok().command_id(long_id.clone())),
        ("long correlation id", ok().correlation_id(long_id.clone())),
        ("long tag", ok().tag(long_tag)),
        ("NUL in an id", ok().command_id("a\0b")),
        (
            "NUL in metadata",
            ok().metadata("k", json!({"deep": "a\0b"})),
        ),
    ];
    for (what, event) in bad {
        match store
            .append(&s, ExpectedVersion::Any, vec![ok(), event])
            .await
        {
            Err(StoreError::InvalidInput(message)) => {
                assert!(!message.is_empty(), "{what}: the error explains itself");
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
        assert_eq!(version(&store, &s).await, 0, "{what}: nothing was written");
    }
    assert_eq!(head(&store).await, 0, "nothing was written at all");
    let at_limits = ok()
        .command_id("c".repeat(NewEvent::MAX_ID_LEN))
        .correlation_id("é".repeat(NewEvent::MAX_ID_LEN / 2))
        .causation_id("x")
        .tag("t".repeat(NewEvent::MAX_TAG_LEN));
    append_ok(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![at_limits.clone()],
    )
    .await;
    let back = read_stream(&store, &s, 1, 1).await;
    assert_envelope(&back[0], &at_limits, "ids and tags at the limits");
}

/// The stream a retried command's events are found in is the one they were written to, with
/// the same envelope: a lookup by command id over a stream sees exactly the command's events.
pub async fn command_ids_group_a_commands_events<S: ConformanceStore>(store: S) {
    let s = StreamId::new("conformance", "commands");
    let batch: Vec<NewEvent> = (0..3)
        .map(|i| NewEvent::new("Step", format!("{{\"i\":{i}}}").into_bytes()))
        .map(|e| e.command_id("cmd-a"))
        .chain(std::iter::once(
            NewEvent::new("Step", b"{}".to_vec()).command_id("cmd-b"),
        ))
        .collect();
    append_ok(&store, &s, ExpectedVersion::NoStream, batch).await;
    let back = read_stream(&store, &s, 1, 10).await;
    let ids: Vec<_> = back.iter().map(|e| e.command_id()).collect();
    assert_eq!(
        ids,
        [Some("cmd-a"), Some("cmd-a"), Some("cmd-a"), Some("cmd-b")]
    );
}
