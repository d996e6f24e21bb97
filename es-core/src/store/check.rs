//! The rules every store checks before writing anything: valid stream ids, expected versions,
//! and well-formed envelopes. Written once here; the backends and the kernel call them.

use std::sync::Arc;

use super::envelope::Envelope;
use super::error::StoreError;
use super::id::{ExpectedVersion, StreamId};

impl StreamId {
    /// Checks the id against the rule every store applies (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the part at fault and quoting at most its first 80
    /// bytes.
    #[inline]
    pub fn validate(&self) -> Result<(), StoreError> {
        check_id_part("aggregate type", &self.aggregate_type, Self::MAX_TYPE_LEN)?;
        check_id_part("aggregate id", &self.aggregate_id, Self::MAX_ID_LEN)
    }
}

/// Checks one part of a stream id: not empty, not longer than `max` bytes, no NUL.
///
/// Inlined, with the error built out of line: the store checks every append's stream id, and
/// the valid case is a length test and one scan.
#[inline]
fn check_id_part(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if text_ok(value, max) {
        Ok(())
    } else {
        Err(text_error("invalid stream id: the", what, value, max))
    }
}

/// Whether `value` is a valid id or tag: not empty, at most `max` bytes, no NUL.
#[inline]
fn text_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !has_nul(value)
}

/// The error for `value`, which [`text_ok`] refused: `{context} {what} is empty` (or too
/// long, or holds a NUL character).
#[cold]
#[inline(never)]
fn text_error(context: &str, what: &str, value: &str, max: usize) -> StoreError {
    StoreError::InvalidInput(if value.is_empty() {
        format!("{context} {what} is empty")
    } else if value.len() > max {
        format!(
            "{context} {what} is {} bytes, at most {max} are allowed ({})",
            value.len(),
            quote_prefix(value)
        )
    } else {
        format!(
            "{context} {what} contains a NUL character ({})",
            quote_prefix(value)
        )
    })
}

/// Whether `value` holds a NUL byte. Ids and tags are checked on every append, and they are
/// short: a branch-free pass over all bytes beats a search that stops early.
fn has_nul(value: &str) -> bool {
    value.bytes().fold(false, |found, b| found | (b == 0))
}

/// `value` quoted for an error message: whole when short, else its first 80 bytes (cut at a
/// character boundary) and how many bytes were left out.
pub fn quote_prefix(value: &str) -> String {
    const SHOWN: usize = 80;
    if value.len() <= SHOWN {
        return format!("{value:?}");
    }
    let mut end = SHOWN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} more bytes)", &value[..end], value.len() - end)
}

impl ExpectedVersion {
    /// `Ok(())` when a stream at version `actual` satisfies this expectation, else
    /// [`StoreError::Conflict`]. Backends call this inside their write transaction.
    pub fn check(self, actual: u64) -> Result<(), StoreError> {
        if self.matches(actual) {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                expected: self,
                actual,
            })
        }
    }
}

impl Envelope {
    /// Checks the envelope against the rule every store applies before writing anything: ids
    /// and tags are not empty, hold no NUL character, and are at most [`Envelope::MAX_ID_LEN`]
    /// (ids) or [`Envelope::MAX_TAG_LEN`] (tags) bytes; metadata strings hold no NUL character
    /// (PostgreSQL's `jsonb` cannot keep one).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] naming the field at fault.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.validate_after(None)
    }

    /// [`Envelope::validate`], skipping ids that are the very same allocation as ids of
    /// `checked`, an envelope already validated (the kernel shares one id between the fields
    /// and the events of a command).
    pub(crate) fn validate_after(&self, checked: Option<&Envelope>) -> Result<(), StoreError> {
        let same = |a: &Option<Arc<str>>, b: Option<&Option<Arc<str>>>| match (a, b) {
            (Some(a), Some(Some(b))) => Arc::ptr_eq(a, b),
            _ => false,
        };
        let command = &self.command_id;
        if let Some(id) = command
            && !same(command, checked.map(|c| &c.command_id))
        {
            check_envelope_text("command id", id, Self::MAX_ID_LEN)?;
        }
        for (what, id) in [
            ("correlation id", &self.correlation_id),
            ("causation id", &self.causation_id),
        ] {
            if let Some(text) = id
                && !same(id, Some(command))
                && !same(id, checked.map(|c| &c.correlation_id))
                && !same(id, checked.map(|c| &c.causation_id))
            {
                check_envelope_text(what, text, Self::MAX_ID_LEN)?;
            }
        }
        for tag in &self.tags {
            check_envelope_text("tag", tag, Self::MAX_TAG_LEN)?;
        }
        for (key, value) in &self.metadata {
            if key.contains('\0') || json_has_nul(value) {
                return Err(StoreError::InvalidInput(format!(
                    "invalid event metadata: the entry {} holds a NUL character",
                    quote_prefix(key)
                )));
            }
        }
        Ok(())
    }
}

/// One envelope id or tag: not empty, at most `max` bytes, no NUL.
#[inline]
fn check_envelope_text(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if text_ok(value, max) {
        Ok(())
    } else {
        Err(text_error("invalid event envelope: a", what, value, max))
    }
}

/// Whether a JSON value holds a NUL character in any string or key.
fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v))
        }
        _ => false,
    }
}
