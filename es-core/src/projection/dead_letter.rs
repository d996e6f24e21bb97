//! The dead-letter queue of a projection under [`ErrorPolicy::Park`](super::ErrorPolicy::Park):
//! the events it parked, by key (the event's stream), and how they are kept in its checkpoint.
//!
//! The parked records travel in the same checkpoint write as the position and the state. A
//! checkpoint without parked events is written exactly as before (the state's bytes alone), so
//! every earlier checkpoint still loads; one with parked events wraps the state in an envelope
//! that starts with [`ENVELOPE_MAGIC`] (a version that predates dead letters refuses it, as a
//! state it cannot decode).

use serde::{Deserialize, Serialize};

use crate::store::{Checkpoint, RecordedEvent};

use super::error::ProjectionError;

/// How many skipped records a checkpoint keeps (the oldest go first).
pub(super) const SKIPPED_RECORDS_KEPT: usize = 1000;

/// The first bytes of a checkpoint state that holds parked events. A leading NUL byte never
/// starts a JSON state.
const ENVELOPE_MAGIC: &[u8; 8] = b"\0es-dlq1";

/// An event a projection parked: its handler failed (after the policy's retries), or an earlier
/// event of the same key is parked. Listed by `kernel.projections().dead_letters(name)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The key whose events are parked in order: the event's stream, as `type/id`.
    pub key: String,
    /// The event's position in the log.
    pub position: u64,
    /// The event's type.
    pub event_type: String,
    /// Why it is parked: the handler's error, or `parked behind position N`.
    pub error: String,
    /// `Some(reason)` once it was skipped ([`Projections::skip`](super::Projections::skip)):
    /// it is dropped, and kept only as a record of why. `None` while it is parked.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Whether a retry of its key was requested in the checkpoint ([`request_retry_in`], the
    /// `es dlq retry` command) and waits for the runner, which carries it out at its next
    /// page or when it reaches the head.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_requested: bool,
}

impl DeadLetter {
    /// Whether it is still parked (not skipped).
    pub fn is_parked(&self) -> bool {
        self.skipped.is_none()
    }
}

/// The key an event is parked under: its stream.
pub(super) fn key_of(event: &RecordedEvent) -> String {
    event.stream.to_string()
}

/// Parks `event` in `parked` behind the first parked event of its key, if one is; `true` when
/// it did.
pub(super) fn park_behind(parked: &mut Parked, event: &RecordedEvent) -> bool {
    if parked.is_empty() {
        return false;
    }
    let key = key_of(event);
    let Some(first) = parked.first_of(&key).map(|l| l.position) else {
        return false;
    };
    parked.park(DeadLetter {
        key,
        position: event.position,
        event_type: event.event_type.clone(),
        error: format!("parked behind position {first}"),
        skipped: None,
        retry_requested: false,
    });
    true
}

/// A projection's dead letters, parked and skipped, in the order they were parked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Parked {
    letters: Vec<DeadLetter>,
}

impl Parked {
    /// Every record, in the order they were parked.
    pub(crate) fn list(&self) -> Vec<DeadLetter> {
        self.letters.clone()
    }

    /// Whether there is no record at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// How many events are parked (skipped ones not counted).
    pub(crate) fn parked_count(&self) -> usize {
        self.letters.iter().filter(|l| l.is_parked()).count()
    }

    /// The first parked event of `key`, if any is.
    pub(crate) fn first_of(&self, key: &str) -> Option<&DeadLetter> {
        self.letters.iter().find(|l| l.key == key && l.is_parked())
    }

    /// The parked events of `key`, in order.
    pub(crate) fn parked_of(&self, key: &str) -> Vec<DeadLetter> {
        self.letters
            .iter()
            .filter(|l| l.key == key && l.is_parked())
            .cloned()
            .collect()
    }

    /// Parks `letter` behind the others.
    pub(crate) fn park(&mut self, letter: DeadLetter) {
        self.letters.push(letter);
    }

    /// Removes the parked event of `key` at `position` (it was applied).
    pub(crate) fn remove(&mut self, key: &str, position: u64) {
        self.letters
            .retain(|l| !(l.key == key && l.position == position && l.is_parked()));
    }

    /// Replaces the error of the parked event of `key` at `position`.
    pub(crate) fn set_error(&mut self, key: &str, position: u64, error: String) {
        if let Some(letter) = self
            .letters
            .iter_mut()
            .find(|l| l.key == key && l.position == position && l.is_parked())
        {
            letter.error = error;
        }
    }

    /// Marks the parked event of `key` at `position` skipped for `reason`; `false` when no such
    /// event is parked. Only the newest [`SKIPPED_RECORDS_KEPT`] skipped records are kept.
    pub(crate) fn skip(&mut self, key: &str, position: u64, reason: &str) -> bool {
        let Some(letter) = self
            .letters
            .iter_mut()
            .find(|l| l.key == key && l.position == position && l.is_parked())
        else {
            return false;
        };
        letter.skipped = Some(reason.to_owned());
        let skipped = self.letters.len() - self.parked_count();
        if skipped > SKIPPED_RECORDS_KEPT {
            let mut extra = skipped - SKIPPED_RECORDS_KEPT;
            self.letters.retain(|l| {
                if extra > 0 && !l.is_parked() {
                    extra -= 1;
                    return false;
                }
                true
            });
        }
        true
    }

    /// Marks the parked events of `key` for a retry by the runner; returns how many are.
    pub(crate) fn request_retry(&mut self, key: &str) -> usize {
        let mut marked = 0;
        for letter in &mut self.letters {
            if letter.key == key && letter.is_parked() {
                letter.retry_requested = true;
                marked += 1;
            }
        }
        marked
    }

    /// The keys whose retry was requested, in the order they were parked.
    pub(crate) fn requested_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for letter in &self.letters {
            if letter.retry_requested && letter.is_parked() && !keys.contains(&letter.key) {
                keys.push(letter.key.clone());
            }
        }
        keys
    }

    /// Clears the retry requests of `key` (its retry is being carried out).
    pub(crate) fn clear_requests(&mut self, key: &str) {
        for letter in &mut self.letters {
            if letter.key == key {
                letter.retry_requested = false;
            }
        }
    }

    /// Drops every record (a rebuild applied the whole log into a fresh state).
    pub(crate) fn clear(&mut self) {
        self.letters.clear();
    }
}

/// The checkpoint state that holds `state` (the projection's own bytes) and `parked`: the
/// state alone when nothing is recorded (the format of every earlier version), else the
/// envelope.
pub(crate) fn wrap_state(
    state: Option<Vec<u8>>,
    parked: &Parked,
) -> Result<Option<Vec<u8>>, ProjectionError> {
    if parked.letters.is_empty() {
        return Ok(state);
    }
    let letters = serde_json::to_vec(&parked.letters)
        .map_err(|e| ProjectionError::State(format!("encoding the dead letters: {e}")))?;
    let state_len = state.as_ref().map_or(0, Vec::len);
    let mut bytes = Vec::with_capacity(ENVELOPE_MAGIC.len() + 9 + state_len + letters.len());
    bytes.extend_from_slice(ENVELOPE_MAGIC);
    match state {
        Some(state) => {
            bytes.push(1);
            bytes.extend_from_slice(&(state.len() as u64).to_le_bytes());
            bytes.extend_from_slice(&state);
        }
        None => {
            bytes.push(0);
            bytes.extend_from_slice(&0u64.to_le_bytes());
        }
    }
    bytes.extend_from_slice(&letters);
    Ok(Some(bytes))
}

/// Splits a checkpoint state written by [`wrap_state`] into the projection's own bytes and its
/// dead letters (none in a checkpoint without the envelope).
pub(crate) fn unwrap_state(
    state: Option<Vec<u8>>,
) -> Result<(Option<Vec<u8>>, Parked), ProjectionError> {
    let Some(bytes) = state else {
        return Ok((None, Parked::default()));
    };
    let Some(rest) = bytes.strip_prefix(ENVELOPE_MAGIC.as_slice()) else {
        return Ok((Some(bytes), Parked::default()));
    };
    let corrupt =
        |what: &str| ProjectionError::State(format!("a corrupt dead-letter record: {what}"));
    let (&flag, rest) = rest.split_first().ok_or_else(|| corrupt("no state flag"))?;
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("no state length"))?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| corrupt("state length"))?;
    if rest.len() < len {
        return Err(corrupt("the state is cut short"));
    }
    let (own, letters) = rest.split_at(len);
    let own = (flag == 1).then(|| own.to_vec());
    let letters: Vec<DeadLetter> =
        serde_json::from_slice(letters).map_err(|e| corrupt(&e.to_string()))?;
    Ok((own, Parked { letters }))
}

/// The dead letters recorded in a saved checkpoint (for tools that read checkpoints without a
/// runner, such as the `es` CLI).
///
/// # Errors
///
/// [`ProjectionError::State`] when the record is corrupt.
pub fn dead_letters_in(checkpoint: &Checkpoint) -> Result<Vec<DeadLetter>, ProjectionError> {
    unwrap_state(checkpoint.state.clone()).map(|(_, parked)| parked.list())
}

/// Marks the event of `key` at `position` parked in `checkpoint` as skipped for `reason`, for
/// tools that edit a checkpoint while no runner of it runs (the `es` CLI). The caller saves
/// the checkpoint. Returns `false` when no such event is parked.
///
/// # Errors
///
/// [`ProjectionError::State`] when the record is corrupt.
pub fn skip_in(
    checkpoint: &mut Checkpoint,
    key: &str,
    position: u64,
    reason: &str,
) -> Result<bool, ProjectionError> {
    let (state, mut parked) = unwrap_state(checkpoint.state.take())?;
    let skipped = parked.skip(key, position, reason);
    checkpoint.state = wrap_state(state, &parked)?;
    Ok(skipped)
}

/// Marks the parked events of `key` in `checkpoint` for a retry, for tools that edit a
/// checkpoint while no runner of it runs (the `es` CLI, which cannot run the handlers): the
/// runner retries them, in order, at its next page or when it reaches the head after it
/// starts. The caller saves the checkpoint. Returns how many events are marked (0: none of
/// `key` is parked).
///
/// # Errors
///
/// [`ProjectionError::State`] when the record is corrupt.
pub fn request_retry_in(checkpoint: &mut Checkpoint, key: &str) -> Result<usize, ProjectionError> {
    let (state, mut parked) = unwrap_state(checkpoint.state.take())?;
    let marked = parked.request_retry(key);
    checkpoint.state = wrap_state(state, &parked)?;
    Ok(marked)
}

/// Moves the positions of the dead letters in `checkpoint` through `position` (a copy of the
/// store to another, whose positions differ, translates them as it translates the
/// checkpoint's own position). The caller saves the checkpoint.
///
/// # Errors
///
/// [`ProjectionError::State`] when the record is corrupt.
pub fn translate_dead_letters(
    checkpoint: &mut Checkpoint,
    position: impl Fn(u64) -> u64,
) -> Result<(), ProjectionError> {
    let (state, mut parked) = unwrap_state(checkpoint.state.take())?;
    for letter in &mut parked.letters {
        letter.position = position(letter.position);
    }
    checkpoint.state = wrap_state(state, &parked)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(key: &str, position: u64) -> DeadLetter {
        DeadLetter {
            key: key.to_owned(),
            position,
            event_type: "E".to_owned(),
            error: "boom".to_owned(),
            skipped: None,
            retry_requested: false,
        }
    }

    #[test]
    fn a_state_without_dead_letters_is_written_as_before() {
        let state = Some(b"{\"n\":1}".to_vec());
        assert_eq!(
            wrap_state(state.clone(), &Parked::default()).unwrap(),
            state
        );
        let (own, parked) = unwrap_state(state.clone()).unwrap();
        assert_eq!(own, state);
        assert_eq!(parked, Parked::default());
    }

    #[test]
    fn the_envelope_round_trips_with_and_without_a_state() {
        let mut parked = Parked::default();
        parked.park(letter("a/1", 3));
        parked.park(letter("a/1", 5));
        assert!(parked.skip("a/1", 3, "bad data"));
        for state in [Some(b"{}".to_vec()), Some(Vec::new()), None] {
            let bytes = wrap_state(state.clone(), &parked).unwrap();
            let (own, back) = unwrap_state(bytes).unwrap();
            assert_eq!(own, state);
            assert_eq!(back, parked);
        }
        assert!(unwrap_state(Some(ENVELOPE_MAGIC.to_vec())).is_err());
    }

    #[test]
    fn translating_moves_every_position_and_keeps_the_state() {
        let mut parked = Parked::default();
        parked.park(letter("a/1", 3));
        parked.park(letter("a/1", 5));
        let mut checkpoint = Checkpoint {
            position: 9,
            state: wrap_state(Some(b"{}".to_vec()), &parked).unwrap(),
        };
        translate_dead_letters(&mut checkpoint, |p| p * 10).unwrap();
        let moved: Vec<u64> = dead_letters_in(&checkpoint)
            .unwrap()
            .iter()
            .map(|l| l.position)
            .collect();
        assert_eq!(moved, [30, 50]);
        let (own, _) = unwrap_state(checkpoint.state).unwrap();
        assert_eq!(own.as_deref(), Some(b"{}".as_slice()));
    }

    #[test]
    fn only_the_newest_skipped_records_are_kept() {
        let mut parked = Parked::default();
        for p in 1..=(SKIPPED_RECORDS_KEPT as u64 + 5) {
            parked.park(letter("k/1", p));
            assert!(parked.skip("k/1", p, "r"));
        }
        parked.park(letter("k/1", 99_999));
        assert_eq!(parked.list().len(), SKIPPED_RECORDS_KEPT + 1);
        assert_eq!(parked.list()[0].position, 6);
        assert_eq!(parked.parked_count(), 1);
    }
}
