//! The [`Aggregate`] trait: pure domain logic, written with `#[aggregate]` or by hand.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::EventSet;

/// A consistency boundary: its state is the fold of its events, and its commands are decided
/// against that state.
///
/// `handle` and `apply` are pure: no I/O, no clock. `handle` never mutates the state; `apply`
/// never fails. `#[aggregate]` writes this impl from `#[command]` and `#[apply]` methods, but
/// nothing stops you from writing it by hand.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type name, used as [`StreamId::aggregate_type`](crate::store::StreamId).
    const TYPE: &'static str;
    /// The command enum. `Clone`, because the kernel re-runs a command after a version
    /// conflict (`#[aggregate]` derives it on the enum it generates).
    type Command: Clone + Send + 'static;
    /// The event enum.
    type Event: EventSet;
    /// The rejection error of commands.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The version of the state's serialized form in snapshots (`#[aggregate(snapshot_version
    /// = n)]`, default 1).
    ///
    /// Bump it whenever a snapshot written by the old code must not be read by the new one:
    /// a field added, removed, renamed or retyped in the state, or a change to what `apply`
    /// computes from the same events (a snapshot holds the old fold's result). A snapshot of
    /// another version is discarded without being decoded and the stream is replayed from its
    /// first event; the next snapshot is written at the new version. Events need no bump of
    /// this: their own `version` and upcasters cover them.
    const SNAPSHOT_VERSION: u32 = 1;

    /// Whether the kernel removes the events a snapshot covers once it has written the
    /// snapshot (`#[aggregate(keep = after_snapshot)]`, default `false`: keep every event).
    ///
    /// After a snapshot at version `v` the events before sequence `v` are removed
    /// ([`EventStore::truncate_stream`](crate::store::EventStore::truncate_stream)); the stream
    /// is rehydrated from the snapshot and its version does not change. Projections that have
    /// not read the removed events yet never will: use it for streams whose history nobody
    /// replays. The snapshot becomes the only copy of the state, so a change of
    /// [`Aggregate::SNAPSHOT_VERSION`] can no longer be met by replaying: such a stream then
    /// fails to load with a `Corrupt` store error naming the missing events.
    const KEEP_AFTER_SNAPSHOT: bool = false;

    /// Decides a command: the events to record, or a rejection.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event.
    fn apply(&mut self, event: &Self::Event);

    /// The personal-data fields of the state, sealed in snapshots (see
    /// [`erasure`](crate::erasure)). `#[aggregate]` returns those of a state with
    /// `#[derive(Pii)]` and none otherwise.
    fn pii_fields(&self) -> Vec<crate::erasure::PiiField> {
        Vec::new()
    }
}
