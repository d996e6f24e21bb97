//! Event sourcing on tokio actors.
//!
//! Domain code is plain Rust: an aggregate is a `Default` struct with `#[command]` methods that
//! decide events and `#[apply]` methods that fold them; the macros generate the command and event
//! enums and the [`Aggregate`] impl. The kernel keeps one actor per live
//! aggregate, rehydrates it from snapshots and events, and passivates it when idle; stores are
//! pluggable behind the traits of [`store`]. It reports through the `metrics` facade (see
//! [`metrics`] for the names) and, without a recorder, through [`Kernel::stats`].
//!
//! ```
//! use es_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! pub struct Deposit { pub amount: u64 }
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
//! pub struct Deposited { pub amount: u64 }
//!
//! #[derive(Debug, Default, Clone, Serialize, Deserialize)]
//! pub struct Account { pub balance: u64 }
//!
//! #[aggregate(name = "account")]
//! impl Account {
//!     #[command]
//!     fn deposit(&self, cmd: Deposit) -> Result<Deposited, std::convert::Infallible> {
//!         Ok(Deposited { amount: cmd.amount })
//!     }
//!     #[apply]
//!     fn deposited(&mut self, e: &Deposited) { self.balance += e.amount; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kernel = Kernel::builder().store(MemoryStore::new()).register::<Account>().build()?;
//! let done = kernel.dispatch::<Account>("a-1", Deposit { amount: 100 }).await?;
//! assert_eq!(done.version, 1);
//! assert_eq!(kernel.state::<Account>("a-1").await?.balance, 100);
//! kernel.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod aggregate;
pub mod clock;
mod counter;
pub mod erasure;
pub mod event;
mod follow;
pub mod kernel;
pub mod memory;
pub mod metrics;
mod panic;
pub mod process;
pub mod projection;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tracker;

pub use aggregate::Aggregate;
pub use event::{Event, EventError, EventSet, IntoEvents, Recorded, UpcastError};
pub use kernel::{Committed, DispatchError, DispatchOptions, Kernel, KernelBuilder};
pub use memory::MemoryStore;
pub use projection::{OnEvents, Projection, ProjectionError};
pub use store::{
    AppendResult, BatchAppend, BatchOutcome, Checkpoint, CheckpointStore, EventStore,
    ExpectedVersion, FilteredPage, Metadata, NewEvent, RecordedEvent, Snapshot, SnapshotStore,
    Store, StoreError, StreamId, validate_append, validate_batch,
};

#[cfg(feature = "macros")]
pub use es_macros::{
    Event, Pii, aggregate, apply, command, on, process_manager, projection, rejected,
};

/// Everything a domain module needs: `use es_core::prelude::*;`.
pub mod prelude {
    pub use crate::aggregate::Aggregate;
    pub use crate::event::{Event, EventSet, IntoEvents, Recorded, UpcastError};
    pub use crate::kernel::{Committed, DispatchError, DispatchOptions, Kernel};
    pub use crate::memory::MemoryStore;
    pub use crate::process::{Commands, ProcessHandle, ProcessManager, Rejection};
    pub use crate::projection::{Projection, ProjectionOptions};
    pub use crate::store::{
        CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent, SnapshotStore,
        StreamId,
    };
    #[cfg(feature = "macros")]
    pub use es_macros::{
        Event, Pii, aggregate, apply, command, on, process_manager, projection, rejected,
    };
}

/// Support for the code the macros generate. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;

    use std::marker::PhantomData;

    use crate::projection::{OnEvents, Projection, ProjectionError};

    /// The conversion of a command handler's error into the aggregate's error type, so that a
    /// mismatch is reported with a message that names the fix (`error = ...`), not as a
    /// missing `From` impl.
    #[diagnostic::on_unimplemented(
        message = "a command handler's error `{E}` does not convert into the aggregate's error `{Self}`",
        label = "`{E}` does not convert into `{Self}`",
        note = "the aggregate's error type is `{Self}` (set with `#[aggregate(error = ...)]`, `std::convert::Infallible` when not given): return `Result<_, {Self}>` from the handler, or set `error = {E}` when the handlers return `{E}`, or implement `From<{E}> for {Self}`"
    )]
    pub trait FromRejection<E> {
        /// Converts the handler's error.
        fn from_rejection(error: E) -> Self;
    }

    /// A bound the `#[aggregate]` expansion checks first, so that a state without `Default`
    /// is reported with a message that names the fix.
    #[diagnostic::on_unimplemented(
        message = "the aggregate `{Self}` has no `Default` state",
        label = "`{Self}` does not implement `Default`",
        note = "an aggregate starts from `Default::default()` before its first event: add `#[derive(Default)]` to `{Self}` (or implement `Default`)"
    )]
    pub trait AggregateState {}

    impl<T: Default> AggregateState for T {}

    /// A bound the `#[projection]` expansion checks first, so that a state without `Default`
    /// is reported with a message that names the fix.
    #[diagnostic::on_unimplemented(
        message = "the projection `{Self}` has no `Default` state",
        label = "`{Self}` does not implement `Default`",
        note = "a projection starts from `Default::default()` before the first event (and on a rebuild): add `#[derive(Default)]` to `{Self}` (or implement `Default`)"
    )]
    pub trait ProjectionState {}

    impl<T: Default> ProjectionState for T {}

    /// Whether a stored event could match both of two `#[on]` handler types: their names
    /// (aliases included) overlap, unless they are the event enums of two different aggregates.
    /// The `#[projection]` expansion evaluates it at compile time for each pair.
    pub const fn on_types_clash<A: OnEvents, B: OnEvents>() -> bool {
        if let (Some(a), Some(b)) = (A::AGGREGATE_TYPE, B::AGGREGATE_TYPE)
            && !same_str(a, b)
        {
            return false;
        }
        let (a, b) = (A::NAMES, B::NAMES);
        let mut i = 0;
        while i < a.len() {
            let mut j = 0;
            while j < b.len() {
                if same_str(a[i], b[j]) {
                    return true;
                }
                j += 1;
            }
            i += 1;
        }
        false
    }

    /// Whether a stored event matches an `#[on]` handler type: one of the set's names and, for
    /// an aggregate's event enum, a stream of that aggregate (checked before decoding).
    pub fn on_matches<E: OnEvents>(event: &crate::store::RecordedEvent) -> bool {
        <E as crate::event::EventSet>::contains(&event.event_type)
            && match E::AGGREGATE_TYPE {
                Some(aggregate_type) => event.stream.aggregate_type == aggregate_type,
                None => true,
            }
    }

    /// A bound the `#[process_manager]` expansion checks first, so that a state that cannot be
    /// checkpointed is reported with a message that names the fix.
    #[diagnostic::on_unimplemented(
        message = "the process manager state `{Self}` must be `Default + Serialize + DeserializeOwned`",
        label = "`{Self}` is not `Default + Serialize + DeserializeOwned`",
        note = "each instance starts from `Default::default()`, and live instances are saved with the checkpoint: add `#[derive(Default, Serialize, Deserialize)]` to `{Self}`"
    )]
    pub trait ProcessState {}

    impl<T: Default + serde::Serialize + serde::de::DeserializeOwned> ProcessState for T {}

    /// `a == b`, in a `const fn`.
    pub const fn same_str(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// A bound the `#[aggregate]` expansion checks first, so that an `error = ...` type that is
    /// not a `std::error::Error` is reported with a message that names the fix.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a `std::error::Error`, so it cannot be an aggregate's `error = ...`",
        label = "`{Self}` does not implement `std::error::Error`",
        note = "derive it: `#[derive(Debug, thiserror::Error)]` with an `#[error(\"...\")]` message (on the type, or on each variant of an enum); or implement `std::fmt::Display` and `std::error::Error` by hand"
    )]
    pub trait RejectionError {}

    impl<T: std::error::Error> RejectionError for T {}

    /// `Clone` for the command enum `#[aggregate]` generates, through a trait whose message
    /// says why a command must be `Clone`.
    #[diagnostic::on_unimplemented(
        message = "the command `{Self}` is not `Clone`",
        label = "`{Self}` does not implement `Clone`",
        note = "the kernel keeps a copy of each command to run it again after a version conflict (another writer got there first): add `#[derive(Clone)]` to `{Self}`"
    )]
    pub trait CommandClone {
        /// Clones the command.
        fn clone_command(&self) -> Self;
    }

    impl<T: Clone> CommandClone for T {
        fn clone_command(&self) -> Self {
            self.clone()
        }
    }

    impl<T: From<E>, E> FromRejection<E> for T {
        fn from_rejection(error: E) -> Self {
            T::from(error)
        }
    }

    /// Chooses, at the expansion site, whether a projection's state is persisted: with serde when
    /// the type supports it (autoref specialization), else not at all.
    pub struct StateCodec<T>(pub PhantomData<T>);

    /// Picked when `T` is serializable.
    pub trait ViaSerde<T> {
        /// Encodes the state.
        fn encode_state(&self, state: &T) -> Option<Result<Vec<u8>, ProjectionError>>;
        /// Decodes the state.
        fn decode_state(&self, bytes: &[u8]) -> Option<Result<T, ProjectionError>>;
    }

    impl<T: Projection + serde::Serialize + serde::de::DeserializeOwned> ViaSerde<T> for StateCodec<T> {
        fn encode_state(&self, state: &T) -> Option<Result<Vec<u8>, ProjectionError>> {
            Some(serde_json::to_vec(state).map_err(|e| ProjectionError::State(e.to_string())))
        }
        fn decode_state(&self, bytes: &[u8]) -> Option<Result<T, ProjectionError>> {
            Some(serde_json::from_slice(bytes).map_err(|e| ProjectionError::State(e.to_string())))
        }
    }

    /// Picked when `T` is not serializable.
    pub trait ViaNothing<T> {
        /// Encodes nothing.
        fn encode_state(&self, state: &T) -> Option<Result<Vec<u8>, ProjectionError>>;
        /// Decodes nothing.
        fn decode_state(&self, bytes: &[u8]) -> Option<Result<T, ProjectionError>>;
    }

    impl<T> ViaNothing<T> for &StateCodec<T> {
        fn encode_state(&self, _: &T) -> Option<Result<Vec<u8>, ProjectionError>> {
            None
        }
        fn decode_state(&self, _: &[u8]) -> Option<Result<T, ProjectionError>> {
            None
        }
    }
}
