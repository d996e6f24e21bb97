//! Projection runners on a checkpoint store that elects one runner per name
//! ([`CheckpointStore::try_lease`]), driven by hand: a standby processes nothing and is not
//! caught up; a runner takes over from the saved checkpoint; a lost lease makes it stand by
//! again, saving nothing, until it takes over again from the other holder's checkpoint. Stores
//! that do not elect (the default) run at once and never stand by.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use es_core::prelude::*;
use es_core::projection::{ProjectionError, ProjectionHandle, ProjectionPhase};
use es_core::store::{Checkpoint, Lease, RunnerLease, StoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The positions handled, persisted with the checkpoint.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Seen {
    positions: Vec<u64>,
}

impl Projection for Seen {
    const NAME: &'static str = "seen";
    fn accepts(_: &str) -> bool {
        true
    }
    fn handle(&mut self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.positions.push(event.position);
        Ok(())
    }
    fn encode_state(&self) -> Option<Result<Vec<u8>, ProjectionError>> {
        Some(serde_json::to_vec(self).map_err(|e| ProjectionError::State(e.to_string())))
    }
    fn decode_state(bytes: &[u8]) -> Option<Result<Self, ProjectionError>> {
        Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
    }
}

/// Who may hold the lease, as the test decides.
#[derive(Default)]
struct Control {
    /// Whether a `try_lease` gets it (else another process holds it).
    free: bool,
    /// Turns the lease handed out last into a lost one.
    lost: Option<watch::Sender<bool>>,
    /// Lease names asked for.
    asked: Vec<String>,
}

/// Checkpoints in a `MemoryStore`, with a lease the test hands out and takes back.
#[derive(Clone)]
struct Elector {
    inner: MemoryStore,
    control: Arc<Mutex<Control>>,
}

#[async_trait]
impl CheckpointStore for Elector {
    async fn load(&self, name: &str) -> Result<Option<Checkpoint>, StoreError> {
        CheckpointStore::load(&self.inner, name).await
    }
    async fn save(
        &self,
        name: &str,
        position: u64,
        state: Option<Vec<u8>>,
    ) -> Result<(), StoreError> {
        CheckpointStore::save(&self.inner, name, position, state).await
    }
    async fn try_lease(&self, name: &str) -> Result<Lease, StoreError> {
        let mut control = self.control.lock();
        control.asked.push(name.to_owned());
        if !control.free {
            return Ok(Lease::HeldElsewhere);
        }
        control.free = false;
        let (lost, lost_rx) = watch::channel(false);
        control.lost = Some(lost);
        Ok(Lease::Acquired(RunnerLease::new(lost_rx, ())))
    }
}

async fn append(store: &MemoryStore, count: u64) -> u64 {
    let events = (0..count)
        .map(|i| NewEvent::new("Ticked", format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    store
        .append(
            &StreamId::new("ticker", uuid_like()),
            ExpectedVersion::NoStream,
            events,
        )
        .await
        .unwrap();
    store.head_position().await.unwrap()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("t-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Waits (up to 5 s) until `check` holds on the handle's status.
async fn until(
    handle: &ProjectionHandle<Seen>,
    check: impl Fn(&es_core::projection::ProjectionStatus) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while !check(&handle.status()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "status never matched: {:?}",
        handle.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_stands_by_takes_over_and_stands_by_again_when_its_lease_is_lost() {
    let events = MemoryStore::new();
    let control = Arc::new(Mutex::new(Control::default()));
    let checkpoints = Elector {
        inner: MemoryStore::new(),
        control: control.clone(),
    };
    let kernel = Kernel::builder()
        .event_store(events.clone())
        .checkpoint_store(checkpoints.clone())
        .build()
        .unwrap();
    let options = ProjectionOptions::default()
        .batch_size(7)
        .poll_interval(Duration::from_millis(50));
    let handle = kernel
        .projections()
        .start::<Seen>(options.clone())
        .await
        .unwrap();

    // Another process holds the lease: this runner stands by, processing nothing.
    let head = append(&events, 20).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = handle.status();
    assert!(status.standby, "{status:?}");
    assert_eq!(status.phase, ProjectionPhase::Running, "{status:?}");
    assert_eq!((status.position, status.events_handled), (0, 0));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), handle.wait_for(head))
            .await
            .is_err(),
        "a standby is not caught up"
    );
    // The lease is named after the projection's checkpoint.
    assert!(control.lock().asked.iter().all(|name| name == "seen"));

    // The other process saved a checkpoint at 5 and went away: this one takes over from it.
    let at_5 = Seen {
        positions: (1..=5).collect(),
    };
    CheckpointStore::save(
        &checkpoints,
        "seen",
        5,
        Some(serde_json::to_vec(&at_5).unwrap()),
    )
    .await
    .unwrap();
    control.lock().free = true;
    tokio::time::timeout(Duration::from_secs(5), handle.wait_for(head))
        .await
        .expect("the runner did not take over")
        .unwrap();
    let status = handle.status();
    assert!(!status.standby, "{status:?}");
    assert_eq!(status.events_handled, 15, "it resumed from the checkpoint");
    assert_eq!(
        handle.state().await.positions,
        (1..=head).collect::<Vec<_>>()
    );
    until(&handle, |s| s.phase == ProjectionPhase::CaughtUp).await;

    // The lease is lost (its connection failed) and another process runs the projection: this
    // runner stands by, processes nothing and saves nothing.
    let lost = control.lock().lost.take().unwrap();
    lost.send_replace(true);
    let later = append(&events, 6).await;
    until(&handle, |s| s.standby).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = handle.status();
    assert!(status.standby, "{status:?}");
    assert_ne!(status.phase, ProjectionPhase::CaughtUp, "{status:?}");
    assert_eq!(status.position, head, "{status:?}");
    assert_eq!(status.events_handled, 15, "{status:?}");
    // The other holder handles the new events and saves its checkpoint (with a marker in its
    // state, to see whose checkpoint is loaded).
    let theirs = Seen {
        positions: (0..=later).collect(),
    };
    CheckpointStore::save(
        &checkpoints,
        "seen",
        later,
        Some(serde_json::to_vec(&theirs).unwrap()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let saved = CheckpointStore::load(&checkpoints, "seen")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.position, later, "a standby does not save");

    // The lease comes back: the runner reloads the other holder's checkpoint and goes on.
    control.lock().free = true;
    until(&handle, |s| !s.standby).await;
    let newest = append(&events, 3).await;
    tokio::time::timeout(Duration::from_secs(5), handle.wait_for(newest))
        .await
        .expect("the runner did not take over again")
        .unwrap();
    let mut expected: Vec<u64> = (0..=later).collect();
    expected.extend(later + 1..=newest);
    assert_eq!(handle.state().await.positions, expected);
    assert_eq!(handle.status().events_handled, 18);
    kernel.shutdown().await;
}

#[tokio::test]
async fn a_store_that_elects_no_runner_runs_at_once_and_never_stands_by() {
    let store = MemoryStore::new();
    let kernel = Kernel::builder().store(store.clone()).build().unwrap();
    let handle = kernel
        .projections()
        .start::<Seen>(ProjectionOptions::default())
        .await
        .unwrap();
    let head = append(&store, 10).await;
    handle.wait_for(head).await.unwrap();
    let status = handle.status();
    assert!(!status.standby, "{status:?}");
    assert_eq!(status.events_handled, 10);
    kernel.shutdown().await;
}
