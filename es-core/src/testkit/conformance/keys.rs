//! Keys and erasure: the key store every backend hands out, and PII fields sealed, read,
//! snapshotted, forgotten and copied through it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::MemoryStore;
use crate::erasure::ErasureLayer;
use crate::store::{
    EventStore, ExpectedVersion, KeyStore, MemoryKeyStore, NewEvent, Snapshot, SnapshotStore,
};

use super::{ConformanceStore, append_ok, read_all, stream};

/// The store's key store; a backend without one fails the suite.
fn keys_of<S: ConformanceStore>(store: &S) -> Arc<dyn KeyStore> {
    match store.key_store() {
        Some(keys) => keys,
        None => panic!("the store has no key store: `EventStore::key_store` returned None"),
    }
}

/// An open PII payload for `subject` holding `secret`.
fn open_payload(subject: &str, secret: &str) -> Vec<u8> {
    serde_json::json!({
        "n": 1,
        "name": {"$pii": {"v": 1, "s": subject, "f": "Named.name", "p": secret, "r": "<erased>"}},
    })
    .to_string()
    .into_bytes()
}

/// The `name` field of a payload read back.
fn name_of(payload: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => v["name"].as_str().unwrap_or("<not a string>").to_owned(),
        Err(e) => panic!("a payload read back is not JSON: {e}"),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A subject's key is created once and read back the same; unknown subjects have none; many
/// concurrent first calls agree on one key.
pub async fn keys_get_or_create<S: ConformanceStore>(store: S) {
    let keys = keys_of(&store);
    let first = keys.subject_key("alice").await;
    let first = first.unwrap_or_else(|e| panic!("subject_key failed: {e}"));
    let again = keys.subject_key("alice").await.ok();
    assert_eq!(again.as_ref(), Some(&first), "a subject keeps its key");
    let found = keys
        .keys(&["alice".to_owned(), "nobody".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("keys failed: {e}"));
    assert_eq!(found.len(), 1, "only subjects with a key are returned");
    assert_eq!(found.get("alice"), Some(&first));
    assert!(
        keys.subject_key("").await.is_err(),
        "an empty subject is refused"
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let keys = keys.clone();
        tasks.push(tokio::spawn(
            async move { keys.subject_key("bob").await.ok() },
        ));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        match task.await {
            Ok(Some(key)) => {
                ids.insert(key.id().to_owned());
            }
            other => panic!("a concurrent subject_key failed: {other:?}"),
        }
    }
    assert_eq!(ids.len(), 1, "concurrent first calls agree on one key");
}

/// `forget` deletes the key and records the erasure; a later key is a new one.
pub async fn forget_deletes_the_key_and_records_it<S: ConformanceStore>(store: S) {
    let keys = keys_of(&store);
    let old = keys
        .subject_key("carol")
        .await
        .unwrap_or_else(|e| panic!("subject_key failed: {e}"));
    keys.subject_key("dave").await.ok();
    let record = keys
        .forget("carol", "dpo@example.com")
        .await
        .unwrap_or_else(|e| panic!("forget failed: {e}"));
    assert_eq!(record.subject, "carol");
    assert_eq!(record.erased_by, "dpo@example.com");
    assert!(record.key_deleted, "the key existed and was deleted");
    let found = keys
        .keys(&["carol".to_owned(), "dave".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("keys failed: {e}"));
    assert!(!found.contains_key("carol"), "the key is gone");
    assert!(found.contains_key("dave"), "other subjects keep theirs");
    let unknown = keys
        .forget("erin", "dpo")
        .await
        .unwrap_or_else(|e| panic!("forget failed: {e}"));
    assert!(!unknown.key_deleted, "a subject without a key is recorded");
    let records = keys
        .erasures()
        .await
        .unwrap_or_else(|e| panic!("erasures failed: {e}"));
    let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["carol", "erin"], "records, oldest first");
    assert_eq!(records[0], record);
    let new = keys
        .subject_key("carol")
        .await
        .unwrap_or_else(|e| panic!("subject_key failed: {e}"));
    assert_ne!(new.id(), old.id(), "a key made after forget is a new one");
    let exported = keys
        .export_keys()
        .await
        .unwrap_or_else(|e| panic!("export_keys failed: {e}"));
    assert!(exported.iter().any(|(s, k)| s == "carol" && k == &new));
    assert!(!exported.iter().any(|(_, k)| k == &old));
    let imported = crate::store::SubjectKey::generate();
    keys.import_key("frank", imported.clone()).await.ok();
    keys.import_key("frank", crate::store::SubjectKey::generate())
        .await
        .ok();
    let found = keys.keys(&["frank".to_owned()]).await.ok();
    assert_eq!(
        found.and_then(|mut f| f.remove("frank")),
        Some(imported),
        "import keeps the first key of a subject"
    );
}

/// PII fields are stored sealed (the plaintext is in no stored event or snapshot), read back
/// in clear through a layer with the keys, redacted after `forget`, and a copy of the events
/// reads redacted without the keys and in clear with them.
pub async fn pii_fields_are_sealed_forgotten_and_copied<S: ConformanceStore>(store: S) {
    let layer = ErasureLayer::new(store.key_store());
    let secret = "Zq8-secret-name-Xw3";
    let s = stream("pii");
    let (sealed, plain) = match layer.seal(&open_payload("gina", secret)).await {
        Ok(Some(done)) => done,
        other => panic!("sealing a PII payload: {other:?}"),
    };
    assert_eq!(name_of(&plain), secret);
    append_ok(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![NewEvent::new("Named", sealed.clone())],
    )
    .await;
    let (state, _) = match layer.seal(&open_payload("gina", secret)).await {
        Ok(Some(done)) => done,
        other => panic!("sealing a PII state: {other:?}"),
    };
    if let Err(e) = SnapshotStore::save(&store, Snapshot::new(s.clone(), 1, state)).await {
        panic!("snapshot save failed: {e}");
    }
    let stored = read_all(&store, 1, 10).await;
    assert!(
        !contains(&stored[0].payload, secret),
        "the stored payload holds no plaintext"
    );
    let snapshot = match SnapshotStore::load_latest(&store, &s).await {
        Ok(Some(snap)) => snap,
        other => panic!("load_latest: {other:?}"),
    };
    assert!(!contains(&snapshot.state, secret), "nor the snapshot");
    let mut events = stored.clone();
    layer.open_events(&mut events).await.ok();
    assert_eq!(name_of(&events[0].payload), secret, "read with the key");

    // A copy of the events without the keys reads redacted; with them, in clear.
    let copy = MemoryStore::new();
    append_ok(
        &copy,
        &s,
        ExpectedVersion::NoStream,
        vec![NewEvent::new("Named", stored[0].payload.clone())],
    )
    .await;
    let copied = read_all(&copy, 1, 10).await;
    let mut without = copied.clone();
    ErasureLayer::new(copy.key_store())
        .open_events(&mut without)
        .await
        .ok();
    assert_eq!(name_of(&without[0].payload), "<erased>");
    let with_keys = MemoryKeyStore::new();
    let exported = keys_of(&store).export_keys().await.unwrap_or_default();
    for (subject, key) in exported {
        with_keys.import_key(&subject, key).await.ok();
    }
    let mut with = copied;
    ErasureLayer::new(Some(Arc::new(with_keys)))
        .open_events(&mut with)
        .await
        .ok();
    assert_eq!(name_of(&with[0].payload), secret, "a copy with its keys");

    if let Err(e) = layer.forget("gina", "dpo").await {
        panic!("forget failed: {e}");
    }
    // A fresh layer (no cache) over the same store sees the erasure too.
    for layer in [layer, ErasureLayer::new(store.key_store())] {
        let mut events = read_all(&store, 1, 10).await;
        if let Err(e) = layer.open_events(&mut events).await {
            panic!("reading after forget failed: {e}");
        }
        assert_eq!(
            name_of(&events[0].payload),
            "<erased>",
            "redacted after forget"
        );
        let snapshot = SnapshotStore::load_latest(&store, &s).await.ok().flatten();
        let state = snapshot.map(|s| s.state).unwrap_or_default();
        let opened = layer.open(&state).await.ok().flatten().unwrap_or_default();
        assert_eq!(name_of(&opened), "<erased>", "the snapshot too");
    }
    let _ = EventStore::head_position(&store).await;
}
