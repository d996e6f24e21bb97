//! Tests of the LMDB codec: keys, event records of both formats, snapshots and checkpoints.

use super::*;

/// A format-1 record, as today's format-1 stores hold them (the encoder of format 1).
fn encode_v1(
    stream: &StreamId,
    sequence: u64,
    timestamp: DateTime<Utc>,
    event_type: &str,
    event_version: u32,
    metadata: &[(&str, &str)],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, stream.aggregate_type.as_bytes());
    put_bytes(&mut out, stream.aggregate_id.as_bytes());
    put_varint(&mut out, sequence);
    put_timestamp(&mut out, timestamp);
    put_varint(&mut out, u64::from(event_version));
    put_bytes(&mut out, event_type.as_bytes());
    put_varint(&mut out, metadata.len() as u64);
    for (key, value) in metadata {
        put_bytes(&mut out, key.as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn full_event() -> NewEvent {
    NewEvent::new("Deposited", br#"{"amount":5}"#.to_vec())
        .version(7)
        .command_id("cmd-1")
        .correlation_id("order-é")
        .causation_id("cmd-1")
        .tag("vip")
        .tag("eu")
        .metadata("user", "ann")
        .metadata("nested", serde_json::json!({"a": [1, 2.5, null, true]}))
}

fn encode(stream: &StreamId, sequence: u64, event: &NewEvent) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![9; 3]; // cleared by the encoder
    EventFields::of(stream, sequence, Utc::now(), event).encode_into(&mut buf)?;
    Ok(buf)
}

#[test]
fn event_round_trips() -> Result<(), StoreError> {
    let stream = StreamId::new("bank_account", "acc-1");
    let at = DateTime::from_timestamp(1_000_000_000, 123_456_789).ok_or(StoreError::Closed)?;
    let event = full_event().timestamp(at);
    let buf = encode(&stream, 300, &event)?;
    assert_eq!(buf[0], RECORD_V2);
    let back = decode_event(&buf, 9)?;
    assert_eq!(back.stream, stream);
    assert_eq!(back.sequence, 300);
    assert_eq!(back.timestamp, at);
    assert_eq!(back.event_version, 7);
    assert_eq!(back.event_type, "Deposited");
    assert_eq!(back.command_id.as_deref(), Some("cmd-1"));
    assert_eq!(back.correlation_id.as_deref(), Some("order-é"));
    assert_eq!(back.causation_id.as_deref(), Some("cmd-1"));
    assert_eq!(back.tags, ["vip", "eu"]);
    assert_eq!(back.metadata, event.envelope.metadata);
    assert_eq!(back.payload, br#"{"amount":5}"#);
    // Every cut short of the payload is noticed (the payload is the rest).
    let payload_start = buf.len() - event.payload.len();
    for cut in 0..payload_start {
        assert!(decode_event(&buf[..cut], 9).is_err(), "cut at {cut}");
    }
    Ok(())
}

#[test]
fn every_envelope_combination_round_trips() -> Result<(), StoreError> {
    let stream = StreamId::new("t", "i");
    let ids = [None, Some("a"), Some("b")];
    for command in ids {
        for correlation in ids {
            for causation in ids {
                let mut event = NewEvent::new("E", b"[]".to_vec());
                event.envelope.command_id = command.map(std::sync::Arc::from);
                event.envelope.correlation_id = correlation.map(std::sync::Arc::from);
                event.envelope.causation_id = causation.map(std::sync::Arc::from);
                let back = decode_event(&encode(&stream, 1, &event)?, 1)?;
                let case = format!("{command:?} {correlation:?} {causation:?}");
                assert_eq!(back.command_id, event.envelope.command_id, "{case}");
                assert_eq!(back.correlation_id, event.envelope.correlation_id, "{case}");
                assert_eq!(back.causation_id, event.envelope.causation_id, "{case}");
                assert_eq!(back.payload, b"[]", "{case}");
            }
        }
    }
    Ok(())
}

/// Floats that the default `serde_json` parser would read one ULP off read back exactly.
#[test]
fn metadata_floats_round_trip_exactly() -> Result<(), StoreError> {
    let mut event = NewEvent::new("E", Vec::new());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..2_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let f = f64::from_bits(x);
        if f.is_finite() {
            event = event.metadata(format!("f{i}"), f);
        }
    }
    let back = decode_event(&encode(&StreamId::new("t", "i"), 1, &event)?, 1)?;
    for (key, value) in &event.envelope.metadata {
        let want = value.as_f64().map(f64::to_bits);
        assert_eq!(back.metadata[key].as_f64().map(f64::to_bits), want, "{key}");
    }
    Ok(())
}

#[test]
fn ids_equal_to_the_command_id_are_stored_once() -> Result<(), StoreError> {
    let stream = StreamId::new("t", "i");
    let id = "c".repeat(100);
    let bare = NewEvent::new("E", Vec::new()).command_id(id.as_str());
    let same = bare
        .clone()
        .correlation_id(id.as_str())
        .causation_id(id.as_str());
    assert_eq!(
        encode(&stream, 1, &bare)?.len(),
        encode(&stream, 1, &same)?.len()
    );
    Ok(())
}

#[test]
fn an_empty_envelope_costs_two_bytes() -> Result<(), StoreError> {
    let stream = StreamId::new("t", "i");
    let at = Utc::now();
    let event = NewEvent::new("E", b"{}".to_vec()).timestamp(at);
    let v2 = encode(&stream, 1, &event)?;
    let v1 = encode_v1(&stream, 1, at, "E", 1, &[], b"{}");
    // v1 spends one byte on its (empty) metadata count; v2 a marker and a flags byte.
    assert_eq!(v2.len(), v1.len() + 1);
    Ok(())
}

#[test]
fn format_1_records_still_decode() -> Result<(), StoreError> {
    let stream = StreamId::new("bank_account", "acc-1");
    let at = Utc::now();
    let buf = encode_v1(
        &stream,
        4,
        at,
        "Opened",
        2,
        &[("correlation_id", "c-1"), ("user", "ada")],
        b"\x00\xff",
    );
    assert_ne!(
        buf[0], RECORD_V2,
        "a format-1 record never starts with the marker"
    );
    let back = decode_event(&buf, 3)?;
    assert_eq!(back.stream, stream);
    assert_eq!((back.sequence, back.event_version), (4, 2));
    assert_eq!(back.timestamp, at);
    assert_eq!(back.event_type, "Opened");
    assert_eq!(back.command_id, None);
    assert_eq!(back.correlation_id, None);
    assert_eq!(back.causation_id, None);
    assert!(back.tags.is_empty());
    assert_eq!(
        back.metadata,
        Metadata::from([
            ("correlation_id".to_owned(), "c-1".into()),
            ("user".to_owned(), "ada".into()),
        ])
    );
    assert_eq!(back.payload, b"\x00\xff");
    assert_eq!(head_of(&buf, 3)?.1, "Opened");
    Ok(())
}

#[test]
fn unknown_or_inconsistent_flags_are_corrupt() -> Result<(), StoreError> {
    let stream = StreamId::new("t", "i");
    let buf = encode(&stream, 1, &NewEvent::new("E", b"{}".to_vec()))?;
    let flags_at = buf.len() - 3; // flags, then the payload `{}`
    assert_eq!(buf[flags_at], 0);
    for bad in [0x80, flag::CORRELATION_IS_COMMAND] {
        let mut tampered = buf.clone();
        tampered[flags_at] = bad;
        assert!(
            matches!(decode_event(&tampered, 1), Err(StoreError::Corrupt(_))),
            "flags {bad:#x}"
        );
    }
    Ok(())
}

#[test]
fn the_event_type_is_read_without_decoding() -> Result<(), StoreError> {
    let stream = StreamId::new("t", "i");
    let out = encode(&stream, 3, &full_event())?;
    assert_eq!(head_of(&out, 9)?.1, "Deposited");
    assert!(head_of(&out[..5], 9).is_err());
    Ok(())
}

#[test]
fn stream_keys_are_prefix_free() {
    let a = stream_key(&StreamId::new("a", "b"));
    let b = stream_key(&StreamId::new("a", "bc"));
    let c = stream_key(&StreamId::new("ab", ""));
    assert!(!b.starts_with(&a));
    assert!(!c.starts_with(&a) && !a.starts_with(&c));
    assert!(!suffixed(&b, 1).starts_with(&a));
}

#[test]
fn checkpoint_round_trips() -> Result<(), StoreError> {
    let bytes = encode_checkpoint(u64::MAX, Some(b"state"));
    let back = decode_checkpoint("p", &bytes)?;
    assert_eq!(back.position, u64::MAX);
    assert_eq!(back.state.as_deref(), Some(&b"state"[..]));
    let back = decode_checkpoint("p", &encode_checkpoint(3, None))?;
    assert_eq!(back.state, None);
    Ok(())
}
