//! The erasure checks of `verify`: no stored event or snapshot holds a `#[pii]` field in
//! clear (the kernel seals every one before it is written), every field is in a format this
//! code reads, and no snapshot holds the plaintext of a forgotten subject.

use std::collections::HashSet;

use base64::Engine;
use es_core::erasure::format::{may_hold_pii, pii_values};

use super::checker::Checker;

/// The header of a snapshot state written at a snapshot version other than 1.
const VERSIONED_STATE: &[u8] = b"\0esv";

/// Checks the PII fields of one stored JSON document (an event's payload or a snapshot's
/// state); `what` names it for the report.
pub(super) fn check_json(
    checker: &mut Checker,
    at: impl Fn() -> String,
    what: &str,
    json: &[u8],
    forgotten: &HashSet<String>,
) {
    if !may_hold_pii(json) {
        return;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    for field in pii_values(&value) {
        match field {
            Err(e) => checker.find(at(), format!("{what}: {e}")),
            Ok(field) if field.is_open() => {
                let forgotten = if forgotten.contains(&field.s) {
                    " (a forgotten subject)"
                } else {
                    ""
                };
                checker.find(
                    at(),
                    format!(
                        "{what} holds the plaintext of PII field {} of subject {}{forgotten}: \
                         it was stored without being sealed",
                        field.f, field.s
                    ),
                );
            }
            Ok(_) => {}
        }
    }
}

/// Checks a snapshot's state (JSON, or JSON behind a snapshot-version header).
pub(super) fn check_state(
    checker: &mut Checker,
    at: impl Fn() -> String,
    state: &[u8],
    forgotten: &HashSet<String>,
) {
    let json = match state.strip_prefix(VERSIONED_STATE) {
        Some(rest) => rest.get(4..).unwrap_or_default(),
        None => state,
    };
    check_json(checker, at, "the snapshot", json, forgotten);
}

/// Checks a file store's snapshot file: its state embedded as JSON or as base64.
#[cfg(feature = "file")]
pub(super) fn check_snapshot_file(
    checker: &mut Checker,
    shown: &str,
    text: &[u8],
    forgotten: &HashSet<String>,
) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(text) else {
        return;
    };
    if let Some(state) = doc.get("state") {
        let json = serde_json::to_vec(state).unwrap_or_default();
        check_state(checker, || shown.to_owned(), &json, forgotten);
    } else if let Some(encoded) = doc.get("state_base64").and_then(|s| s.as_str())
        && let Ok(state) = base64::engine::general_purpose::STANDARD.decode(encoded)
    {
        check_state(checker, || shown.to_owned(), &state, forgotten);
    }
}

/// The subjects of the erasure records in a file or LMDB store's `keys/erasures.jsonl`.
#[cfg(feature = "file")]
pub(super) fn forgotten_in_dir(dir: &std::path::Path) -> HashSet<String> {
    let Ok(text) = std::fs::read_to_string(dir.join("keys").join("erasures.jsonl")) else {
        return HashSet::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<es_core::store::ErasureRecord>(l).ok())
        .map(|r| r.subject)
        .collect()
}
