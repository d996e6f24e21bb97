//! Deadlines: timers an instance sets in a handler (`out.schedule(..)`), kept with the
//! instance's state in the checkpoint, and handled by its `#[on(deadline)]` handler when they
//! fall due ([`ScheduledDeadline`]); and the runner's set of pending ones ([`Timers`]).
//!
//! A deadline's due time is computed from what triggered the handler that scheduled it (the
//! event's timestamp, or the due time of the deadline being handled), never from the time the
//! handler happens to run: handling the same events again after a restart schedules the same
//! deadlines, with the same ids.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventError};

/// A deadline an instance scheduled: what its `#[on(deadline)]` handler gets, decoded, when
/// it falls due. Its payload is a user type with `#[derive(Event)]` (a stable name and a
/// version, like a stored event: it is stored with the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledDeadline {
    /// Unique within the instance, derived from what scheduled it (`7:0`).
    id: String,
    /// The payload's type name (`Event::NAME`).
    #[serde(rename = "type")]
    name: String,
    /// The payload's version (`Event::VERSION`).
    version: u32,
    /// When it falls due, by the kernel's clock.
    due: DateTime<Utc>,
    /// The payload, as JSON.
    payload: serde_json::Value,
    /// The order in which the runner learnt of it: a deadline scheduled while deadlines fire
    /// waits for the next round (so a chain of zero delays cannot hold the runner).
    #[serde(skip)]
    seq: u64,
}

impl ScheduledDeadline {
    /// A deadline `deadline` with id `id`, due at `due`.
    pub(crate) fn new<D: Event>(
        id: String,
        due: DateTime<Utc>,
        deadline: &D,
    ) -> Result<Self, EventError> {
        let payload = serde_json::to_value(deadline).map_err(|e| EventError::Encode {
            event_type: D::NAME.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Self {
            id,
            name: D::NAME.to_owned(),
            version: D::VERSION,
            due,
            payload,
            seq: 0,
        })
    }

    /// Its id, unique within the instance (its handler's command ids are derived from it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The payload's type name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it falls due.
    pub fn due(&self) -> DateTime<Utc> {
        self.due
    }

    /// Whether its payload is a `D` (by name or alias).
    pub fn is<D: Event>(&self) -> bool {
        D::answers_to(&self.name)
    }

    /// Decodes the payload as a `D`, through the one decode path of events (upcasters
    /// included).
    ///
    /// # Errors
    ///
    /// When it is not a `D`, or does not decode.
    pub fn decode<D: Event>(&self) -> Result<D, EventError> {
        if !self.is::<D>() {
            return Err(EventError::UnknownEvent {
                event_type: self.name.clone(),
            });
        }
        let bytes = serde_json::to_vec(&self.payload).map_err(|e| EventError::Encode {
            event_type: self.name.clone(),
            message: e.to_string(),
        })?;
        D::decode_payload(self.version, &bytes)
    }
}

/// What a handler did to its instance's deadlines, applied in order once its commands were
/// answered.
#[derive(Debug)]
pub(crate) enum DeadlineOp {
    /// Set a new deadline.
    Schedule(ScheduledDeadline),
    /// Drop the pending deadlines whose payload type answers to this test.
    Cancel(fn(&str) -> bool),
}

/// The pending deadlines of every instance, and the order in which they fall due.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_key: HashMap<String, Vec<ScheduledDeadline>>,
    /// `(due, key, id)` of every pending deadline.
    queue: BTreeSet<(DateTime<Utc>, String, String)>,
    /// The `seq` the next deadline learnt of gets.
    next_seq: u64,
}

impl Timers {
    /// The timers of the deadlines saved with a checkpoint.
    pub(crate) fn new(saved: HashMap<String, Vec<ScheduledDeadline>>) -> Self {
        let mut timers = Self::default();
        for (key, deadlines) in saved {
            for deadline in deadlines {
                timers.insert(&key, deadline);
            }
        }
        timers
    }

    /// The pending deadlines by instance, as saved with the checkpoint.
    pub(crate) fn by_key(&self) -> &HashMap<String, Vec<ScheduledDeadline>> {
        &self.by_key
    }

    /// How many deadlines are pending.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The pending deadlines of instance `key`, in the order they were scheduled.
    pub(crate) fn of(&self, key: &str) -> &[ScheduledDeadline] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// When the earliest pending deadline of an instance `keep` keeps falls due.
    pub(crate) fn next_due_where(&self, keep: impl Fn(&str) -> bool) -> Option<DateTime<Utc>> {
        self.queue
            .iter()
            .find(|(_, key, _)| keep(key))
            .map(|(due, _, _)| *due)
    }

    /// The mark of "now" for [`Timers::take_due`]: deadlines learnt of later wait for the next
    /// mark.
    pub(crate) fn mark(&self) -> u64 {
        self.next_seq
    }

    fn insert(&mut self, key: &str, mut deadline: ScheduledDeadline) {
        deadline.seq = self.next_seq;
        self.next_seq += 1;
        self.queue
            .insert((deadline.due, key.to_owned(), deadline.id.clone()));
        let pending = self.by_key.entry(key.to_owned()).or_default();
        // The same id scheduled again (the same handler run again) replaces the old one.
        if let Some(old) = pending.iter().position(|d| d.id == deadline.id) {
            let old = pending.remove(old);
            if old.due != deadline.due {
                self.queue.remove(&(old.due, key.to_owned(), old.id));
            }
        }
        pending.push(deadline);
    }

    fn remove(&mut self, key: &str, mut keep: impl FnMut(&ScheduledDeadline) -> bool) {
        let Some(pending) = self.by_key.get_mut(key) else {
            return;
        };
        let queue = &mut self.queue;
        pending.retain(|d| {
            let kept = keep(d);
            if !kept {
                queue.remove(&(d.due, key.to_owned(), d.id.clone()));
            }
            kept
        });
        if pending.is_empty() {
            self.by_key.remove(key);
        }
    }

    /// Applies what a handler of instance `key` did, in order.
    pub(crate) fn apply(&mut self, key: &str, ops: Vec<DeadlineOp>) {
        for op in ops {
            match op {
                DeadlineOp::Schedule(deadline) => self.insert(key, deadline),
                DeadlineOp::Cancel(matches) => self.remove(key, |d| !matches(&d.name)),
            }
        }
    }

    /// Drops every pending deadline of instance `key` (it finished).
    pub(crate) fn drop_instance(&mut self, key: &str) {
        self.remove(key, |_| false);
    }

    /// Takes instance `key`'s earliest deadline due at or before `until` and learnt of before
    /// `mark`, if any.
    pub(crate) fn take_due(
        &mut self,
        key: &str,
        until: DateTime<Utc>,
        mark: u64,
    ) -> Option<ScheduledDeadline> {
        let pending = self.by_key.get(key)?;
        let index = pending
            .iter()
            .enumerate()
            .filter(|(_, d)| d.due <= until && d.seq < mark)
            .min_by(|(_, a), (_, b)| a.due.cmp(&b.due).then_with(|| a.seq.cmp(&b.seq)))
            .map(|(i, _)| i)?;
        let mut taken = None;
        let id = pending[index].id.clone();
        self.remove(key, |d| {
            if d.id == id {
                taken = Some(d.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// The instances with a deadline due at or before `until` and learnt of before `mark`, in
    /// the order their first such deadline falls due.
    pub(crate) fn due_keys(&self, until: DateTime<Utc>, mark: u64) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for (_, key, _) in self.queue.iter().take_while(|(due, _, _)| *due <= until) {
            if seen.contains(key.as_str()) {
                continue;
            }
            if self.of(key).iter().any(|d| d.due <= until && d.seq < mark) {
                seen.insert(key.as_str());
                keys.push(key.clone());
            }
        }
        keys
    }
}
