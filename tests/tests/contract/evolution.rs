//! The schema-evolution section of the design on any store: events stored at versions 1, 2 and
//! 3 (and under an old name) replayed through a two-step upcaster chain by an aggregate and by
//! a projection; every decode error on a dispatch (nothing written, a fixed release works);
//! a panicking upcaster; snapshots of another snapshot version or ahead of their stream.

use std::collections::BTreeMap;

use es_core::prelude::*;
use es_core::projection::ErrorPolicy;
use es_core::store::StoreError;
use es_core::{EventError, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Error;

/// Version 1 had no currency; one without an amount cannot be lifted.
fn taken_v1(mut v: Value) -> Result<Value, UpcastError> {
    if v.get("amount").is_none() {
        return Err(UpcastError::new("a version-1 `taken` without an amount"));
    }
    v["currency"] = "EUR".into();
    Ok(v)
}

/// Version 2 had no note. An amount of 666 makes it panic (the bad-input case).
fn taken_v2(mut v: Value) -> Result<Value, UpcastError> {
    assert!(v["amount"] != json!(666), "upcaster bug on 666");
    v["note"] = Value::Null;
    Ok(v)
}

/// The event at version 3, once called `taken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "evo.taken", version = 3, aliases("taken"),
        upcast(from = 1, with = taken_v1), upcast(from = 2, with = taken_v2))]
pub struct Taken {
    /// How much.
    pub amount: u64,
    /// In which currency (version 2).
    pub currency: String,
    /// Why (version 3).
    pub note: Option<String>,
}

/// An event the first release does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "evo.frozen")]
pub struct Frozen;

/// A command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Take {
    /// How much.
    pub amount: u64,
}

/// The aggregate of the first release: it knows `Taken` only.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Purse {
    /// The sum taken.
    pub total: u64,
    /// The currency of each event, in order.
    pub currencies: Vec<String>,
}

#[aggregate(name = "evo_purse")]
impl Purse {
    #[command]
    fn take(&self, cmd: Take) -> Result<Taken, std::convert::Infallible> {
        Ok(Taken {
            amount: cmd.amount,
            currency: "USD".into(),
            note: None,
        })
    }

    #[apply]
    fn taken(&mut self, e: &Taken) {
        self.total += e.amount;
        self.currencies.push(e.currency.clone());
    }
}

/// The fixed release: same aggregate type, it also knows `Frozen`; its state changed shape,
/// so its snapshots are of version 2.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FixedPurse {
    /// The sum taken.
    pub total: u64,
    /// Whether the purse was frozen.
    pub frozen: bool,
}

#[aggregate(name = "evo_purse", snapshot_version = 2)]
impl FixedPurse {
    #[command]
    fn take(&self, cmd: Take) -> Result<Taken, std::convert::Infallible> {
        Ok(Taken {
            amount: cmd.amount,
            currency: "USD".into(),
            note: None,
        })
    }

    #[apply]
    fn taken(&mut self, e: &Taken) {
        self.total += e.amount;
    }

    #[apply]
    fn frozen(&mut self, _: &Frozen) {
        self.frozen = true;
    }
}

/// Totals per purse, through the same decode path.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Totals {
    /// Sum per purse id.
    pub by_purse: BTreeMap<String, u64>,
    /// Every currency seen, in order.
    pub currencies: Vec<String>,
}

#[projection(name = "evo_totals")]
impl Totals {
    #[on]
    fn taken(&mut self, e: &Recorded<Taken>) {
        *self
            .by_purse
            .entry(e.stream.aggregate_id.clone())
            .or_default() += e.payload.amount;
        self.currencies.push(e.payload.currency.clone());
    }
}

/// A stored event as an older release wrote it.
fn stored(name: &str, version: u32, payload: Value) -> NewEvent {
    NewEvent::new(name, payload.to_string().into_bytes()).version(version)
}

fn purse(id: &str) -> StreamId {
    StreamId::new("evo_purse", id)
}

/// The store's error inside a dispatch error, or a failure naming what came instead.
fn decode_error<T: std::fmt::Debug>(
    result: Result<T, DispatchError<std::convert::Infallible>>,
) -> EventError {
    match result {
        Err(DispatchError::Store(StoreError::Decode { source, .. })) => source,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// Runs the evolution contract on `store`, which must be empty.
pub async fn evolution_contract<S>(store: S) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    // History written by three releases: v1, v2 under the old name, v3.
    let history = vec![
        stored("evo.taken", 1, json!({ "amount": 1 })),
        stored("taken", 2, json!({ "amount": 2, "currency": "GBP" })),
        stored(
            "evo.taken",
            3,
            json!({ "amount": 4, "currency": "CHF", "note": "n" }),
        ),
    ];
    store
        .append(&purse("a"), ExpectedVersion::NoStream, history)
        .await?;

    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<Purse>()
        .build()?;
    let state: Purse = kernel.state::<Purse>("a").await?;
    assert_eq!(state.total, 7);
    assert_eq!(state.currencies, ["EUR", "GBP", "CHF"]);
    let done = kernel.dispatch::<Purse>("a", Take { amount: 8 }).await?;
    assert_eq!(done.version, 4);
    assert_eq!(done.events[0].event_type, "evo.taken");
    assert_eq!(done.events[0].event_version, 3);

    // The projection reads the same history through the same chain, the alias included.
    let totals: Totals = es_core::projection::run_once(&store).await?;
    assert_eq!(totals.by_purse["a"], 15);
    assert_eq!(totals.currencies, ["EUR", "GBP", "CHF", "USD"]);

    // Every decode error fails the dispatch with `DispatchError::Store`, naming the event,
    // the stored version and the reason, and writes nothing.
    let cases: [(&str, NewEvent, &str); 4] = [
        (
            "unknown",
            stored("evo.frozen", 1, json!(null)),
            "unknown event type `evo.frozen`",
        ),
        (
            "too-new",
            stored("evo.taken", 4, json!({ "amount": 1 })),
            "has version 4, this code supports up to 3",
        ),
        (
            "refused",
            stored("evo.taken", 1, json!({ "currency": "EUR" })),
            "stored at version 1: the upcaster from version 1 failed: a version-1 `taken` \
             without an amount",
        ),
        (
            "shapeless",
            stored(
                "evo.taken",
                2,
                json!({ "amount": "many", "currency": "EUR" }),
            ),
            "cannot decode payload of event `evo.taken` stored at version 2",
        ),
    ];
    for (id, bad, expected) in cases {
        store
            .append(
                &purse(id),
                ExpectedVersion::NoStream,
                vec![
                    stored(
                        "evo.taken",
                        3,
                        json!({ "amount": 1, "currency": "EUR", "note": null }),
                    ),
                    bad,
                ],
            )
            .await?;
        let error = decode_error(kernel.dispatch::<Purse>(id, Take { amount: 1 }).await);
        let message = error.to_string();
        assert!(message.contains(expected), "{id}: {message}");
        assert_eq!(
            store.stream_version(&purse(id)).await?,
            2,
            "{id}: nothing written"
        );
    }
    // The error says which stream and event, not "corrupt store data".
    let whole = kernel
        .dispatch::<Purse>("unknown", Take { amount: 1 })
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        whole.contains(
            "event 2 of stream evo_purse/unknown cannot be decoded: unknown event type `evo.frozen`"
        ),
        "{whole}"
    );
    assert!(!whole.contains("corrupt"), "{whole}");

    // A panicking upcaster is caught like a panicking `apply`: nothing written.
    store
        .append(
            &purse("panics"),
            ExpectedVersion::NoStream,
            vec![stored(
                "evo.taken",
                2,
                json!({ "amount": 666, "currency": "EUR" }),
            )],
        )
        .await?;
    match kernel.dispatch::<Purse>("panics", Take { amount: 1 }).await {
        Err(DispatchError::Panicked(message)) => {
            assert!(message.contains("upcaster bug on 666"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(store.stream_version(&purse("panics")).await?, 1);
    kernel.shutdown().await;

    // The projection applies its error policy to decode errors: skipped and recorded.
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<FixedPurse>()
        .build()?;
    let handle = kernel
        .projections()
        .start::<Totals>(ProjectionOptions::default().error_policy(ErrorPolicy::Skip))
        .await?;
    handle.wait_for(store.head_position().await?).await?;
    let status = handle.status();
    let skipped: Vec<&str> = status
        .skipped
        .iter()
        .map(|s| s.event_type.as_str())
        .collect();
    assert_eq!(skipped, ["evo.taken"; 4], "{:?}", status.skipped);
    assert!(
        status
            .skipped
            .iter()
            .any(|s| s.error.contains("without an amount")),
        "{:?}",
        status.skipped
    );
    kernel.projections().stop(Totals::NAME).await?;

    // The fixed release reads the stream the first one could not, and writes to it.
    let state: FixedPurse = kernel.state::<FixedPurse>("unknown").await?;
    assert!(state.frozen);
    let done = kernel
        .dispatch::<FixedPurse>("unknown", Take { amount: 1 })
        .await?;
    assert_eq!(done.version, 3);
    kernel.shutdown().await;

    snapshots(store).await
}

/// A snapshot of another snapshot version is discarded without being decoded, and so is one
/// ahead of its stream.
async fn snapshots<S>(store: S) -> Result<(), Error>
where
    S: EventStore + SnapshotStore + CheckpointStore + Clone,
{
    store
        .append(
            &purse("snap"),
            ExpectedVersion::NoStream,
            vec![stored("evo.taken", 1, json!({ "amount": 5 }))],
        )
        .await?;
    // A version-1 snapshot (bare JSON, as every snapshot before versions) that would decode
    // as a `FixedPurse` with a wrong total: it must not be used.
    SnapshotStore::save(
        &store,
        Snapshot::new(
            purse("snap"),
            1,
            br#"{"total":1000,"frozen":false}"#.to_vec(),
        ),
    )
    .await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<FixedPurse>()
        .build()?;
    let state: FixedPurse = kernel.state::<FixedPurse>("snap").await?;
    assert_eq!(
        state.total, 5,
        "replayed, not restored from the old snapshot"
    );
    kernel.shutdown().await;

    // The kernel writes version-2 snapshots, and restores them.
    let kernel = Kernel::builder()
        .store(store.clone())
        .snapshot_every(1)
        .register::<FixedPurse>()
        .build()?;
    kernel
        .dispatch::<FixedPurse>("snap", Take { amount: 1 })
        .await?;
    kernel.shutdown().await;
    let written = store
        .load_latest(&purse("snap"))
        .await?
        .ok_or("a snapshot")?;
    assert_eq!(written.version, 2);
    assert!(written.state.starts_with(b"\0esv"), "{:?}", written.state);
    let mut forged = written.state[..8].to_vec();
    forged.extend_from_slice(br#"{"total":1000,"frozen":true}"#);
    SnapshotStore::save(&store, Snapshot::new(purse("snap"), 2, forged)).await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<FixedPurse>()
        .build()?;
    let state: FixedPurse = kernel.state::<FixedPurse>("snap").await?;
    assert_eq!(state.total, 1000, "restored from the version-2 snapshot");
    kernel.shutdown().await;

    // A snapshot at sequence 5 on a stream of one event: discarded, and writes still work.
    store
        .append(
            &purse("ahead"),
            ExpectedVersion::NoStream,
            vec![stored("evo.taken", 1, json!({ "amount": 5 }))],
        )
        .await?;
    SnapshotStore::save(
        &store,
        Snapshot::new(
            purse("ahead"),
            5,
            br#"{"total":1000,"currencies":[]}"#.to_vec(),
        ),
    )
    .await?;
    let kernel = Kernel::builder()
        .store(store.clone())
        .register::<Purse>()
        .build()?;
    let state: Purse = kernel.state::<Purse>("ahead").await?;
    assert_eq!(state.total, 5);
    let done = kernel
        .dispatch::<Purse>("ahead", Take { amount: 1 })
        .await?;
    assert_eq!(done.version, 2);
    kernel.shutdown().await;
    Ok(())
}
