//! Deciding a batch: pure, no store and no runtime.
//!
//! The commands of a batch run in order against the evolving state: each accepted command's
//! events are applied before the next command is handled, so later commands see earlier ones.
//! The result is the events to append (in one `append`) and one outcome per command; or, when
//! `handle` or `apply` panics, which command did it (the state is then unknown, and the caller
//! must throw it away).

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::aggregate::Aggregate;
use crate::event::EventSet;
use crate::store::{NewEvent, StoreError};

use super::DispatchOptions;
use crate::panic::panic_message;

/// What became of one command of a batch.
#[derive(Debug)]
pub(crate) enum Outcome<E> {
    /// Accepted: its `count` events are the next ones of the batch, leaving the stream at
    /// `version`.
    Events { count: usize, version: u64 },
    /// Rejected by the aggregate.
    Rejected(E),
    /// The command expected the stream at `expected`; it was at `actual`.
    Conflict { expected: u64, actual: u64 },
    /// Its events could not be encoded.
    Failed(StoreError),
}

/// The decision on a batch.
#[derive(Debug)]
pub(crate) enum Decided<E> {
    /// The events to append, and one outcome per command, in order.
    Ok {
        events: Vec<NewEvent>,
        outcomes: Vec<Outcome<E>>,
    },
    /// Command `index` panicked (in `handle`, or in `apply` of its events).
    Panicked { index: usize, message: String },
}

/// Decides `commands` in order against `state`, which is at stream version `base`.
///
/// `state` evolves by the accepted events; after `Panicked` it is unknown.
pub(crate) fn decide<'a, A: Aggregate>(
    state: &mut A,
    base: u64,
    now: DateTime<Utc>,
    commands: impl ExactSizeIterator<Item = (&'a A::Command, Option<&'a DispatchOptions>)>,
) -> Decided<A::Error> {
    let mut version = base;
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for (index, (command, options)) in commands.enumerate() {
        if let Some(expected) = options.and_then(|o| o.expected_version)
            && expected != version
        {
            outcomes.push(Outcome::Conflict {
                expected,
                actual: version,
            });
            continue;
        }
        let command = command.clone();
        let decided = match catch_unwind(AssertUnwindSafe(|| state.handle(command))) {
            Ok(decided) => decided,
            Err(p) => {
                return Decided::Panicked {
                    index,
                    message: panic_message(p),
                };
            }
        };
        let produced = match decided {
            Ok(produced) => produced,
            Err(e) => {
                outcomes.push(Outcome::Rejected(e));
                continue;
            }
        };
        let count = match encode::<A>(&produced, options, now, &mut events) {
            Ok(count) => count,
            Err(e) => {
                outcomes.push(Outcome::Failed(e));
                continue;
            }
        };
        for event in &produced {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| state.apply(event))) {
                return Decided::Panicked {
                    index,
                    message: panic_message(p),
                };
            }
        }
        version += count as u64;
        outcomes.push(Outcome::Events { count, version });
    }
    Decided::Ok { events, outcomes }
}

/// Encodes one command's events with the command's envelope, stamped `now`, at the end of
/// `events`; returns how many. On an error `events` is left as it was.
fn encode<A: Aggregate>(
    produced: &[A::Event],
    options: Option<&DispatchOptions>,
    now: DateTime<Utc>,
    events: &mut Vec<NewEvent>,
) -> Result<usize, StoreError> {
    if produced.is_empty() {
        return Ok(0);
    }
    let given = |id: Option<&Arc<str>>| id.cloned();
    let command_id = given(options.and_then(|o| o.envelope.command_id.as_ref()))
        .unwrap_or_else(|| fresh_command_id(now));
    let correlation_id = given(options.and_then(|o| o.envelope.correlation_id.as_ref()))
        .unwrap_or_else(|| command_id.clone());
    let causation_id = given(options.and_then(|o| o.envelope.causation_id.as_ref()))
        .unwrap_or_else(|| command_id.clone());
    let before = events.len();
    events.reserve(produced.len());
    for event in produced {
        let mut new = match event.to_new_event() {
            Ok(new) => new,
            Err(e) => {
                events.truncate(before);
                return Err(StoreError::InvalidInput(format!(
                    "cannot encode an event of {}: {e}",
                    A::TYPE
                )));
            }
        };
        new.envelope.command_id = Some(command_id.clone());
        new.envelope.correlation_id = Some(correlation_id.clone());
        new.envelope.causation_id = Some(causation_id.clone());
        new.timestamp = Some(now);
        if let Some(options) = options {
            new.envelope.tags.clone_from(&options.envelope.tags);
            new.envelope.metadata.clone_from(&options.envelope.metadata);
        }
        events.push(new);
    }
    Ok(produced.len())
}

/// A fresh command id: a UUID v7 (time-ordered) whose time part is `now`, in its hyphenated
/// lower-case form (one allocation: the shared string itself).
///
/// The 74 random bits come from a per-thread SplitMix64 generator seeded once from the
/// operating system's randomness (through a v4 UUID): a fresh id per command is on every
/// command's path, and this keeps it to a few nanoseconds.
pub(crate) fn fresh_command_id(now: DateTime<Utc>) -> Arc<str> {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(seed());
    }
    fn seed() -> u64 {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(seed)
    }
    fn next(state: &std::cell::Cell<u64>) -> u64 {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let (a, b) = STATE.with(|state| (next(state), next(state)));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    Arc::from(&*id.hyphenated().encode_lower(&mut buffer))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::event::Event;

    /// `bad` cannot be encoded to JSON when it is not empty (its keys are not strings).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Added {
        n: u64,
        #[serde(default)]
        bad: BTreeMap<Vec<u8>, u8>,
    }

    impl Event for Added {
        const NAME: &'static str = "Added";
        const VERSION: u32 = 1;
    }

    #[derive(Debug, thiserror::Error)]
    #[error("too big")]
    struct TooBig;

    #[derive(Debug, Clone)]
    enum Cmd {
        /// Adds `n` (one event per unit), refused above 10 in total.
        Add(u64),
        /// An event that cannot be encoded.
        Unencodable,
        PanicInHandle,
        /// An event whose `apply` panics.
        PanicInApply,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Counter {
        total: u64,
    }

    impl Aggregate for Counter {
        const TYPE: &'static str = "counter";
        type Command = Cmd;
        type Event = Added;
        type Error = TooBig;

        fn handle(&self, command: Cmd) -> Result<Vec<Added>, TooBig> {
            let added = |n| Added {
                n,
                bad: BTreeMap::new(),
            };
            match command {
                Cmd::Add(n) if self.total + n > 10 => Err(TooBig),
                Cmd::Add(n) => Ok((0..n).map(|_| added(1)).collect()),
                Cmd::Unencodable => Ok(vec![Added {
                    n: 1,
                    bad: BTreeMap::from([(vec![1], 1)]),
                }]),
                Cmd::PanicInHandle => panic!("handle exploded"),
                Cmd::PanicInApply => Ok(vec![added(100)]),
            }
        }

        fn apply(&mut self, event: &Added) {
            assert!(event.n < 100, "apply exploded");
            self.total += event.n;
        }
    }

    fn run(
        state: &mut Counter,
        base: u64,
        batch: &[(Cmd, Option<DispatchOptions>)],
    ) -> Decided<TooBig> {
        decide::<Counter>(
            state,
            base,
            Utc::now(),
            batch.iter().map(|(c, o)| (c, o.as_ref())),
        )
    }

    fn summary(outcomes: &[Outcome<TooBig>]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Events { count, version } => format!("events {count} -> {version}"),
                Outcome::Rejected(e) => format!("rejected: {e}"),
                Outcome::Conflict { expected, actual } => {
                    format!("conflict {expected}/{actual}")
                }
                Outcome::Failed(_) => "failed".to_owned(),
            })
            .collect()
    }

    #[test]
    fn later_commands_see_the_events_of_earlier_ones() {
        let mut state = Counter::default();
        let batch = [
            (Cmd::Add(4), None),
            (Cmd::Add(5), None),
            (Cmd::Add(2), None),
        ];
        let Decided::Ok { events, outcomes } = run(&mut state, 3, &batch) else {
            panic!("no panic expected");
        };
        assert_eq!(
            summary(&outcomes),
            ["events 4 -> 7", "events 5 -> 12", "rejected: too big"]
        );
        assert_eq!(events.len(), 9);
        assert_eq!(state.total, 9, "the rejected command changed nothing");
    }

    #[test]
    fn an_expected_version_is_checked_against_the_evolving_version() {
        let mut state = Counter::default();
        let at = |v| Some(DispatchOptions::default().expected_version(v));
        let batch = [
            (Cmd::Add(1), at(0)),
            (Cmd::Add(1), at(0)),
            (Cmd::Add(1), at(1)),
        ];
        let Decided::Ok { events, outcomes } = run(&mut state, 0, &batch) else {
            panic!("no panic expected");
        };
        assert_eq!(
            summary(&outcomes),
            ["events 1 -> 1", "conflict 0/1", "events 1 -> 2"]
        );
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn the_envelope_goes_on_every_event_of_its_command() {
        let mut state = Counter::default();
        let options = DispatchOptions::default()
            .metadata("user", "u-1")
            .metadata("attempt", 2)
            .tag("vip")
            .tag("eu")
            .causation_id("evt-3")
            .command_id("c-1");
        let batch = [(Cmd::Add(2), Some(options)), (Cmd::Add(1), None)];
        let Decided::Ok { events, .. } = run(&mut state, 0, &batch) else {
            panic!("no panic expected");
        };
        for event in &events[..2] {
            assert_eq!(event.envelope.metadata["user"], "u-1");
            assert_eq!(event.envelope.metadata["attempt"], 2);
            assert_eq!(event.envelope.command_id.as_deref(), Some("c-1"));
            assert_eq!(
                event.envelope.correlation_id.as_deref(),
                Some("c-1"),
                "defaults to the command id"
            );
            assert_eq!(event.envelope.causation_id.as_deref(), Some("evt-3"));
            assert_eq!(event.envelope.tags, ["vip", "eu"]);
        }
        let plain = &events[2];
        assert!(plain.envelope.metadata.is_empty() && plain.envelope.tags.is_empty());
        let id = plain.envelope.command_id.as_deref().unwrap_or_default();
        let parsed = uuid::Uuid::parse_str(id).map(|u| u.get_version_num());
        assert_eq!(parsed.ok(), Some(7), "a fresh UUID v7, got {id:?}");
        assert_eq!(plain.envelope.correlation_id.as_deref(), Some(id));
        assert_eq!(plain.envelope.causation_id.as_deref(), Some(id));
    }

    #[test]
    fn fresh_command_ids_are_unique_v7_uuids_across_threads() {
        let t = Utc::now();
        let per_thread = move || (0..50_000).map(|_| fresh_command_id(t)).collect::<Vec<_>>();
        let other = std::thread::spawn(per_thread);
        let mut ids = per_thread();
        ids.extend(other.join().unwrap_or_default());
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 100_000, "no id repeats");
        for id in ids.iter().take(1000) {
            let parsed = uuid::Uuid::parse_str(id).map(|u| u.get_version_num());
            assert_eq!(parsed.ok(), Some(7), "{id}");
        }
    }

    #[test]
    fn fresh_command_ids_are_canonical_text_with_the_clock_in_their_time_part() {
        let t = DateTime::<Utc>::from_timestamp_millis(1_764_000_123_456).unwrap_or_default();
        for _ in 0..1000 {
            let id = fresh_command_id(t);
            let parsed = uuid::Uuid::parse_str(&id).unwrap_or_default();
            assert_eq!(
                parsed.hyphenated().to_string(),
                *id,
                "lower-case, hyphenated"
            );
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = parsed
                .get_timestamp()
                .map(|ts| ts.to_unix())
                .unwrap_or_default();
            assert_eq!((secs, nanos / 1_000_000), (1_764_000_123, 456));
        }
    }

    #[test]
    fn fresh_command_ids_differ_and_follow_the_clock() {
        let t = Utc::now();
        let (a, b) = (fresh_command_id(t), fresh_command_id(t));
        assert_ne!(a, b);
        let later = fresh_command_id(t + chrono::Duration::seconds(1));
        assert!(later > a, "UUID v7 sorts by time: {later} > {a}");
    }

    #[test]
    fn an_event_that_cannot_be_encoded_fails_its_command_only() {
        let mut state = Counter::default();
        let batch = [(Cmd::Unencodable, None), (Cmd::Add(1), None)];
        let Decided::Ok { events, outcomes } = run(&mut state, 0, &batch) else {
            panic!("no panic expected");
        };
        assert_eq!(summary(&outcomes), ["failed", "events 1 -> 1"]);
        assert_eq!(events.len(), 1);
        assert_eq!(state.total, 1, "the failed command's event was not applied");
    }

    #[test]
    fn a_panic_in_handle_or_apply_names_the_command() {
        for (panicking, message) in [
            (Cmd::PanicInHandle, "handle exploded"),
            (Cmd::PanicInApply, "apply exploded"),
        ] {
            let mut state = Counter::default();
            let batch = [(Cmd::Add(1), None), (panicking, None), (Cmd::Add(1), None)];
            match run(&mut state, 0, &batch) {
                Decided::Panicked { index, message: m } => {
                    assert_eq!(index, 1);
                    assert_eq!(m, message);
                }
                Decided::Ok { .. } => panic!("the panic was not caught"),
            }
        }
    }

    #[test]
    fn an_empty_batch_decides_nothing() {
        let mut state = Counter::default();
        let Decided::Ok { events, outcomes } = run(&mut state, 5, &[]) else {
            panic!("no panic expected");
        };
        assert!(events.is_empty() && outcomes.is_empty());
    }
}
