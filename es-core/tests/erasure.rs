//! Erasure by crypto-shredding through the kernel: what is stored, what is read before and
//! after `forget`, in aggregates, snapshots, projections and copies.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use es_core::erasure::ErasureLayer;
use es_core::prelude::*;
use es_core::projection::{ProjectionError, ProjectionOptions};
use es_core::store::{KeyStore, MemoryKeyStore, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Open {
    pub holder: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deposit {
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Opened {
    pub customer: String,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    pub holder: String,
    #[pii(subject = customer)]
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
pub struct Deposited {
    pub amount: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, Pii)]
pub struct Account {
    pub customer: String,
    #[pii(subject = customer, redacted = "<erased>".to_owned())]
    pub holder: String,
    pub balance: u64,
}

#[aggregate(name = "account")]
impl Account {
    #[command]
    fn open(&self, c: Open) -> Result<Opened, std::convert::Infallible> {
        Ok(Opened {
            customer: format!("customer-{}", c.holder.len()),
            holder: c.holder,
            email: c.email,
        })
    }
    #[command]
    fn deposit(&self, c: Deposit) -> Result<Deposited, std::convert::Infallible> {
        Ok(Deposited { amount: c.amount })
    }
    #[apply]
    fn opened(&mut self, e: &Opened) {
        self.customer = e.customer.clone();
        self.holder = e.holder.clone();
    }
    #[apply]
    fn deposited(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

/// The holders of every opened account, in order.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Holders {
    names: Vec<String>,
}

impl Projection for Holders {
    const NAME: &'static str = "holders";
    fn accepts(event_type: &str) -> bool {
        event_type == "Opened"
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.names
            .push(Recorded::<Opened>::decode(event)?.payload.holder);
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn open(holder: &str) -> Open {
    Open {
        holder: holder.to_owned(),
        email: format!("{holder}@example.com"),
    }
}

fn kernel(store: &MemoryStore) -> Kernel {
    Kernel::builder()
        .store(store.clone())
        .snapshot_every(2)
        .register::<Account>()
        .build()
        .unwrap()
}

/// Everything the store holds, as bytes: events and the latest snapshot of each account.
async fn stored_bytes(store: &MemoryStore, ids: &[&str]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = store
        .read_all(1, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    for id in ids {
        if let Some(s) = store
            .load_latest(&StreamId::new("account", *id))
            .await
            .unwrap()
        {
            all.push(s.state);
        }
    }
    all
}

#[tokio::test]
async fn pii_is_stored_encrypted_and_read_back_in_clear() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    let done = k
        .dispatch::<Account>("a-1", open("Ada Lovelace"))
        .await
        .unwrap();
    let answered = Recorded::<Opened>::decode(&done.events[0]).unwrap();
    assert_eq!(
        answered.payload.holder, "Ada Lovelace",
        "the caller reads its event"
    );
    k.dispatch::<Account>("a-1", Deposit { amount: 5 })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for bytes in stored_bytes(&store, &["a-1"]).await {
        assert!(!contains(&bytes, "Ada Lovelace"), "no plaintext is stored");
        assert!(!contains(&bytes, "Ada Lovelace@example.com"));
    }
    let snapshot = store
        .load_latest(&StreamId::new("account", "a-1"))
        .await
        .unwrap()
        .expect("a snapshot after 2 events");
    assert!(
        contains(&snapshot.state, "\"$pii\""),
        "the snapshot holds the field sealed"
    );
    // A fresh kernel (from the snapshot) reads the plaintext back.
    k.shutdown().await;
    let k = kernel(&store);
    let state = k.state::<Account>("a-1").await.unwrap();
    assert_eq!((state.holder.as_str(), state.balance), ("Ada Lovelace", 5));
    k.shutdown().await;
}

#[tokio::test]
async fn after_forget_every_read_is_redacted_and_others_are_untouched() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Account>("a-1", open("Ada Lovelace"))
        .await
        .unwrap();
    k.dispatch::<Account>("a-1", Deposit { amount: 5 })
        .await
        .unwrap();
    k.dispatch::<Account>("b-1", open("Grace Hopper!"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The live actor holds the plaintext until the forget.
    assert_eq!(
        k.state::<Account>("a-1").await.unwrap().holder,
        "Ada Lovelace"
    );

    let record = k.forget_by("customer-12", "dpo@example.com").await.unwrap();
    assert!(record.key_deleted);
    assert_eq!(record.erased_by, "dpo@example.com");

    // The live aggregate dropped its state; the rehydrated one (from the snapshot) is redacted.
    let a = k.state::<Account>("a-1").await.unwrap();
    assert_eq!((a.holder.as_str(), a.balance), ("<erased>", 5));
    let b = k.state::<Account>("b-1").await.unwrap();
    assert_eq!(b.holder, "Grace Hopper!", "another subject is untouched");

    // A projection over the kernel's store: the replacement, nothing fails to decode.
    let handle = k
        .projections()
        .start::<Holders>(ProjectionOptions::default().in_memory_checkpoints())
        .await
        .unwrap();
    handle
        .wait_for(store.head_position().await.unwrap())
        .await
        .unwrap();
    assert_eq!(handle.state().await.names, ["<erased>", "Grace Hopper!"]);
    // The email had no `redacted`: its `Default`.
    let events = k.event_store().read_all(1, 10).await.unwrap();
    let opened = Recorded::<Opened>::decode(&events[0]).unwrap().payload;
    assert_eq!(
        (opened.holder.as_str(), opened.email.as_str()),
        ("<erased>", "")
    );

    // A fresh kernel, and a reader of the raw store without keys, read the same.
    k.shutdown().await;
    let k = kernel(&store);
    assert_eq!(k.state::<Account>("a-1").await.unwrap().holder, "<erased>");
    let raw = store.read_all(1, 10).await.unwrap();
    assert_eq!(
        Recorded::<Opened>::decode(&raw[0]).unwrap().payload.holder,
        "<erased>"
    );
    assert_eq!(store.erasures().await.unwrap(), vec![record]);
    k.shutdown().await;
}

#[tokio::test]
async fn a_subject_written_again_after_forget_gets_a_new_key() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Account>("a-1", open("Ada Lovelace"))
        .await
        .unwrap();
    k.forget("customer-12").await.unwrap();
    k.dispatch::<Account>("a-2", open("Ada Byron!!!"))
        .await
        .unwrap();
    let events = k.event_store().read_all(1, 10).await.unwrap();
    let holders: Vec<String> = events
        .iter()
        .map(|e| Recorded::<Opened>::decode(e).unwrap().payload.holder)
        .collect();
    assert_eq!(holders, ["<erased>", "Ada Byron!!!"]);
    k.shutdown().await;
}

#[tokio::test]
async fn a_copy_reads_redacted_without_keys_and_in_clear_with_them() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Account>("a-1", open("Ada Lovelace"))
        .await
        .unwrap();
    k.shutdown().await;
    let events = store.read_all(1, 10).await.unwrap();
    let copy = MemoryStore::new();
    for e in &events {
        let new = NewEvent::new(e.event_type.clone(), e.payload.clone());
        copy.append(&e.stream, ExpectedVersion::Any, vec![new])
            .await
            .unwrap();
    }
    let k = kernel(&copy);
    assert_eq!(k.state::<Account>("a-1").await.unwrap().holder, "<erased>");
    k.shutdown().await;
    // With the keys carried over.
    let with_keys = MemoryStore::new();
    for e in &events {
        let new = NewEvent::new(e.event_type.clone(), e.payload.clone());
        with_keys
            .append(&e.stream, ExpectedVersion::Any, vec![new])
            .await
            .unwrap();
    }
    for (subject, key) in store.export_keys().await.unwrap() {
        with_keys.import_key(&subject, key).await.unwrap();
    }
    let k = kernel(&with_keys);
    assert_eq!(
        k.state::<Account>("a-1").await.unwrap().holder,
        "Ada Lovelace"
    );
    // Forgetting in the original does not reach a copy made before (it has its own key).
    k.shutdown().await;
}

#[tokio::test]
async fn a_kernel_without_a_key_store_refuses_pii_and_a_given_one_is_used() {
    /// An event store that hands out no key store.
    struct NoKeys(MemoryStore);
    #[async_trait::async_trait]
    impl EventStore for NoKeys {
        async fn append(
            &self,
            s: &StreamId,
            e: ExpectedVersion,
            v: Vec<NewEvent>,
        ) -> Result<es_core::store::AppendResult, StoreError> {
            self.0.append(s, e, v).await
        }
        async fn read_stream(
            &self,
            s: &StreamId,
            f: u64,
            l: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.read_stream(s, f, l).await
        }
        async fn read_all(&self, f: u64, l: usize) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.read_all(f, l).await
        }
        async fn stream_version(&self, s: &StreamId) -> Result<u64, StoreError> {
            self.0.stream_version(s).await
        }
        async fn head_position(&self) -> Result<u64, StoreError> {
            self.0.head_position().await
        }
        fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
            self.0.subscribe()
        }
    }
    let store = MemoryStore::new();
    let k = Kernel::builder()
        .event_store(NoKeys(store.clone()))
        .register::<Account>()
        .build()
        .unwrap();
    match k.dispatch::<Account>("a-1", open("Ada Lovelace")).await {
        Err(DispatchError::Store(StoreError::InvalidInput(m))) => {
            assert!(m.contains("key store"), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        store.head_position().await.unwrap(),
        0,
        "nothing was written"
    );
    k.dispatch::<Account>("a-1", Deposit { amount: 1 })
        .await
        .unwrap();
    k.shutdown().await;

    let keys = MemoryKeyStore::new();
    let k = Kernel::builder()
        .event_store(NoKeys(store.clone()))
        .key_store(keys.clone())
        .register::<Account>()
        .build()
        .unwrap();
    k.dispatch::<Account>("a-2", open("Ada Lovelace"))
        .await
        .unwrap();
    assert_eq!(keys.export_keys().await.unwrap().len(), 1);
    assert!(
        store.export_keys().await.unwrap().is_empty(),
        "the given key store is used"
    );
    k.shutdown().await;
}

#[tokio::test]
async fn a_newer_pii_format_is_refused_clearly() {
    let store = MemoryStore::new();
    let payload =
        br#"{"customer":"c","holder":{"$pii":{"v":2,"s":"c","f":"x","r":""}},"email":""}"#;
    store
        .append(
            &StreamId::new("account", "a-1"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new("Opened", payload.to_vec())],
        )
        .await
        .unwrap();
    let raw = store.read_all(1, 10).await.unwrap();
    let error = Recorded::<Opened>::decode(&raw[0]).unwrap_err().to_string();
    assert!(error.contains("format version 2"), "{error}");
    let layer = ErasureLayer::new(store.key_store());
    let mut events = raw.clone();
    match layer.open_events(&mut events).await {
        Err(StoreError::Incompatible(m)) => assert!(m.contains("newer code"), "{m}"),
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_ciphertext_is_an_error_not_a_redaction() {
    let store = MemoryStore::new();
    let k = kernel(&store);
    k.dispatch::<Account>("a-1", open("Ada Lovelace"))
        .await
        .unwrap();
    k.shutdown().await;
    let raw = store.read_all(1, 10).await.unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&raw[0].payload).unwrap();
    // Move the email's ciphertext into the holder's place: the associated data differs.
    let email = value["email"]["$pii"]["c"].clone();
    let nonce = value["email"]["$pii"]["n"].clone();
    value["holder"]["$pii"]["c"] = email;
    value["holder"]["$pii"]["n"] = nonce;
    let mut events = raw;
    events[0].payload = serde_json::to_vec(&value).unwrap();
    let layer = ErasureLayer::new(store.key_store());
    match layer.open_events(&mut events).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("authentication failed"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
