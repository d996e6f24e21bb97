//! The stored form of a PII field inside a JSON payload.
//!
//! A `#[pii]` field's value is replaced, in the stored JSON, by an object with one reserved key,
//! [`MARKER`] (`"$pii"`), so that any reader finds it without knowing the schema:
//!
//! ```json
//! {"holder": {"$pii": {"v": 1, "s": "customer-7", "k": "3f0c…", "f": "bank.opened.holder",
//!                      "n": "<nonce, base64>", "c": "<ciphertext and tag, base64>",
//!                      "r": "<the field's replacement once erased>"}}}
//! ```
//!
//! - `v`: the format version ([`FORMAT_VERSION`]); a newer one is refused with a clear error.
//! - `s`: the subject whose key encrypts the value; `k`: that key's id (a key created after a
//!   `forget` has another id, so older values stay unreadable).
//! - `f`: the field's identity (`{event or aggregate type}.{json name}`).
//! - `n`, `c`: the random 96-bit nonce and the AES-256-GCM ciphertext of the value's JSON, with
//!   `es-pii/1`, the subject, the field and the key id as associated data (base64, standard
//!   alphabet, padded).
//! - `r`: the JSON of the field's declared replacement, read in place of the value once the key
//!   is gone (written in clear: it holds no personal data by construction).
//!
//! Inside a process, between encoding and the store, a field may also be *open*: `p` holds the
//! plaintext instead of `n` and `c`. The kernel seals every open field before it reaches a
//! store and refuses to write one it cannot seal; stores never hold `p`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reserved key of a PII field's object in a stored JSON payload.
pub const MARKER: &str = "$pii";

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The bytes that any payload holding a PII field contains (a fast pre-check).
const NEEDLE: &[u8] = b"\"$pii\"";

/// Whether `json` may hold a PII field (contains the marker key at all).
pub fn may_hold_pii(json: &[u8]) -> bool {
    memchr::memmem::find(json, NEEDLE).is_some()
}

/// One PII field as found in a payload: sealed (stored) or open (in flight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiValue {
    /// The format version.
    pub v: u32,
    /// The subject.
    pub s: String,
    /// The key id (sealed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// The field identity.
    pub f: String,
    /// The nonce, base64 (sealed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The ciphertext, base64 (sealed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
    /// The plaintext (open only: never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Value>,
    /// The replacement once erased.
    pub r: Value,
}

impl PiiValue {
    /// Whether this field still holds its plaintext (not yet sealed).
    pub fn is_open(&self) -> bool {
        self.p.is_some()
    }

    /// This field as the JSON object stored in place of the value.
    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::with_capacity(1);
        object.insert(
            MARKER.to_owned(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        Value::Object(object)
    }
}

/// Why a PII field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Written by newer code, in a format version this code does not know.
    #[error(
        "a PII field of format version {0}: this code reads version {FORMAT_VERSION} only \
         (written by newer code; upgrade to read it)"
    )]
    NewerVersion(u32),
    /// The marker object is malformed.
    #[error("a malformed PII field: {0}")]
    Malformed(String),
}

/// The PII field `value` holds, if it is a marker object (`{"$pii": {...}}`).
pub fn pii_value(value: &Value) -> Option<Result<PiiValue, FormatError>> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    let inner = object.get(MARKER)?;
    if let Some(v) = inner.get("v").and_then(Value::as_u64)
        && v > u64::from(FORMAT_VERSION)
    {
        return Some(Err(FormatError::NewerVersion(
            u32::try_from(v).unwrap_or(u32::MAX),
        )));
    }
    Some(
        serde_json::from_value::<PiiValue>(inner.clone())
            .map_err(|e| FormatError::Malformed(e.to_string())),
    )
}

/// Calls `visit` on every PII field of `value` (depth first), replacing it by what `visit`
/// returns.
pub fn rewrite<E>(
    value: &mut Value,
    visit: &mut impl FnMut(PiiValue) -> Result<Value, E>,
) -> Result<(), E>
where
    E: From<FormatError>,
{
    if let Some(found) = pii_value(value) {
        *value = visit(found?)?;
        return Ok(());
    }
    match value {
        Value::Object(map) => map.values_mut().try_for_each(|v| rewrite(v, visit)),
        Value::Array(items) => items.iter_mut().try_for_each(|v| rewrite(v, visit)),
        _ => Ok(()),
    }
}

/// Every PII field of `value`, in document order.
pub fn pii_values(value: &Value) -> Vec<Result<PiiValue, FormatError>> {
    fn walk(value: &Value, out: &mut Vec<Result<PiiValue, FormatError>>) {
        if let Some(found) = pii_value(value) {
            out.push(found);
            return;
        }
        match value {
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// `json` with every PII field replaced by what a reader without keys sees: an open field's
/// plaintext (in flight only), a sealed field's replacement. `None` when `json` holds none.
pub fn without_keys(json: &[u8]) -> Option<Result<Vec<u8>, FormatError>> {
    if !may_hold_pii(json) {
        return None;
    }
    let mut value: Value = serde_json::from_slice(json).ok()?;
    let mut found = false;
    let done = rewrite(&mut value, &mut |field: PiiValue| {
        found = true;
        Ok::<_, FormatError>(field.p.unwrap_or(field.r))
    });
    if let Err(e) = done {
        return Some(Err(e));
    }
    if !found {
        return None;
    }
    Some(serde_json::to_vec(&value).map_err(|e| FormatError::Malformed(e.to_string())))
}
