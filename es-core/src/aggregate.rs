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

    /// Decides a command: the events to record, or a rejection.
    fn handle(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Evolves the state by one event.
    fn apply(&mut self, event: &Self::Event);
}
