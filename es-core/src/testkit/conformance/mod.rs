//! The store conformance suite: every case a backend must pass.
//!
//! Run the whole suite with [`store_conformance_tests!`](crate::store_conformance_tests), which
//! writes one `#[tokio::test]` per case. Each case is also a public async function taking a fresh
//! store, so a backend can run a case on its own. Cases panic with a message naming what broke.
//!
//! The cases are grouped by concern: appends, batches of appends, reads, the envelope, snapshots, checkpoints,
//! concurrency, subscriptions, stream ids, streams that end (deletes and truncation) and
//! keys (erasure); this module holds what they share.

mod append;
mod batch;
mod checkpoints;
mod concurrency;
mod envelope;
mod keys;
mod lifecycle;
mod read;
mod snapshots;
mod stream_ids;
mod subscribe;

pub use append::{
    append_any, append_exact, append_no_stream_to_new_stream, empty_append_writes_nothing,
    multi_event_append_is_atomic, positions_increase_across_streams,
    sequences_start_at_one_and_are_gapless, wrong_expected_version_writes_nothing,
};
pub use batch::{
    append_many_decides_in_order, append_many_matches_a_model,
    append_many_refuses_an_invalid_batch, append_many_two_batches_one_stream,
};
pub use checkpoints::checkpoints_save_load;
pub use concurrency::{concurrent_appenders_many_streams, concurrent_appenders_one_stream};
pub use envelope::{
    command_ids_group_a_commands_events, envelope_round_trips, invalid_envelopes_are_refused,
};
pub use keys::{
    forget_deletes_the_key_and_records_it, keys_get_or_create,
    pii_fields_are_sealed_forgotten_and_copied,
};
pub use lifecycle::{
    LifecycleOp, hard_delete_removes_events_and_snapshots, lifecycle_matches_a_model,
    lifecycle_ops_match_the_model, soft_delete_writes_a_tombstone,
    truncate_keeps_positions_and_versions,
};
pub use read::{
    metadata_and_payload_round_trip, read_all_filtered_skips_but_advances, read_all_ranges,
    read_stream_ranges, unknown_stream_is_empty,
};
pub use snapshots::snapshots_save_load_prune;
pub use stream_ids::{invalid_stream_ids_are_refused, stream_ids_at_the_limits_round_trip};
pub use subscribe::subscribe_wakes_after_append;

use crate::store::{
    AppendResult, CheckpointStore, EventStore, ExpectedVersion, NewEvent, RecordedEvent,
    SnapshotStore, StoreError, StreamId,
};

/// What a store needs to run the suite.
pub trait ConformanceStore:
    EventStore + SnapshotStore + CheckpointStore + Clone + Send + Sync + 'static
{
}

impl<S: EventStore + SnapshotStore + CheckpointStore + Clone + Send + Sync + 'static>
    ConformanceStore for S
{
}

/// What the backend promises beyond the common contract.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Positions have no holes (memory, file, LMDB). A store that documents holes must still
    /// never let a reader skip an event.
    pub gapless_positions: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            gapless_positions: true,
        }
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("conformance", id)
}

fn event(n: u64) -> NewEvent {
    NewEvent::new("Numbered", format!("{{\"n\":{n}}}").into_bytes())
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

async fn append_ok<S: EventStore>(
    store: &S,
    stream: &StreamId,
    expected: ExpectedVersion,
    batch: Vec<NewEvent>,
) -> AppendResult {
    match store.append(stream, expected, batch).await {
        Ok(done) => done,
        Err(e) => panic!("append to {stream} with {expected:?} failed: {e}"),
    }
}

async fn read_stream<S: EventStore>(
    store: &S,
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> Vec<RecordedEvent> {
    match store.read_stream(stream, from, limit).await {
        Ok(events) => events,
        Err(e) => panic!("read_stream({stream}, {from}, {limit}) failed: {e}"),
    }
}

async fn read_all<S: EventStore>(store: &S, from: u64, limit: usize) -> Vec<RecordedEvent> {
    match store.read_all(from, limit).await {
        Ok(events) => events,
        Err(e) => panic!("read_all({from}, {limit}) failed: {e}"),
    }
}

async fn version<S: EventStore>(store: &S, stream: &StreamId) -> u64 {
    match store.stream_version(stream).await {
        Ok(v) => v,
        Err(e) => panic!("stream_version({stream}) failed: {e}"),
    }
}

async fn head<S: EventStore>(store: &S) -> u64 {
    match store.head_position().await {
        Ok(v) => v,
        Err(e) => panic!("head_position failed: {e}"),
    }
}

fn sequences(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

fn assert_conflict<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(StoreError::Conflict {
            expected: e,
            actual: a,
        }) => {
            assert_eq!(e, expected, "conflict reports the expected version");
            assert_eq!(a, actual, "conflict reports the actual version");
        }
        other => panic!("expected Conflict {{ {expected:?}, actual {actual} }}, got {other:?}"),
    }
}

/// Runs one named case with a store from `factory`. A factory that returns no store fails the
/// case: a conformance run never passes without having exercised a store.
#[doc(hidden)]
pub async fn run_case<S, G, F, Fut, C, CFut>(name: &str, factory: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Option<(S, G)>>,
    C: FnOnce(S) -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    let Some((store, guard)) = factory().await else {
        panic!(
            "conformance case `{name}`: the store factory returned no store, so nothing was \
             tested (is the backend's server configured?)"
        );
    };
    case(store).await;
    drop(guard);
}

/// Writes one `#[tokio::test]` per conformance case for a backend.
///
/// `factory` is a path to an `async fn() -> Option<(S, G)>` that returns a fresh, empty store
/// and a guard kept alive for the test (a temporary directory, a schema to drop, or `()`), or
/// `None` when the backend is unavailable, which fails the case (a factory that can say why
/// should rather panic with the reason, as the PostgreSQL tests do when `ES_PG_URL` is unset). Pass
/// `gapless = false` for a backend that documents holes in positions.
///
/// ```no_run
/// async fn memory() -> Option<(es_core::MemoryStore, ())> {
///     Some((es_core::MemoryStore::new(), ()))
/// }
/// es_core::store_conformance_tests!(memory);
/// // With holes in positions: es_core::store_conformance_tests!(memory, gapless = false);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::store_conformance_tests!($factory, gapless = true);
    };
    ($factory:path, gapless = $gapless:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testkit::conformance as c;

            fn caps() -> c::Capabilities {
                c::Capabilities { gapless_positions: $gapless }
            }

            $crate::store_conformance_tests!(@cases $factory;
                append_no_stream_to_new_stream,
                append_any,
                append_exact,
                wrong_expected_version_writes_nothing,
                multi_event_append_is_atomic,
                empty_append_writes_nothing,
                append_many_decides_in_order,
                append_many_two_batches_one_stream,
                append_many_refuses_an_invalid_batch,
                append_many_matches_a_model,
                sequences_start_at_one_and_are_gapless,
                read_stream_ranges,
                read_all_ranges,
                read_all_filtered_skips_but_advances,
                unknown_stream_is_empty,
                metadata_and_payload_round_trip,
                envelope_round_trips,
                invalid_envelopes_are_refused,
                command_ids_group_a_commands_events,
                snapshots_save_load_prune,
                checkpoints_save_load,
                concurrent_appenders_one_stream,
                subscribe_wakes_after_append,
                invalid_stream_ids_are_refused,
                stream_ids_at_the_limits_round_trip,
                keys_get_or_create,
                forget_deletes_the_key_and_records_it,
                pii_fields_are_sealed_forgotten_and_copied,
                soft_delete_writes_a_tombstone,
                truncate_keeps_positions_and_versions,
                hard_delete_removes_events_and_snapshots,
                lifecycle_matches_a_model
            );
            $crate::store_conformance_tests!(@caps_cases $factory;
                positions_increase_across_streams,
                concurrent_appenders_many_streams
            );
        }
    };
    (@cases $factory:path; $($case:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                c::run_case(stringify!($case), $factory, c::$case).await;
            }
        )+
    };
    (@caps_cases $factory:path; $($case:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                c::run_case(stringify!($case), $factory, |s| c::$case(s, caps())).await;
            }
        )+
    };
}
