//! AES-256-GCM over one field's JSON, with a random 96-bit nonce per value.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::format::{FORMAT_VERSION, PiiValue};
use crate::store::SubjectKey;

/// Why a sealed field could not be opened with the key of its subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PII field `{field}` of subject `{subject}` cannot be decrypted: {reason}")]
pub struct OpenError {
    /// The field identity.
    pub field: String,
    /// The subject.
    pub subject: String,
    /// What went wrong.
    pub reason: String,
}

/// The associated data binding a ciphertext to its subject, field and key.
fn associated_data(subject: &str, field: &str, key_id: &str) -> Vec<u8> {
    format!("es-pii/{FORMAT_VERSION}\0{subject}\0{field}\0{key_id}").into_bytes()
}

/// Seals an open field with `key` (its subject's key).
pub(crate) fn seal(key: &SubjectKey, open: PiiValue) -> Result<PiiValue, OpenError> {
    let fail = |reason: String| OpenError {
        field: open.f.clone(),
        subject: open.s.clone(),
        reason,
    };
    let plain = open.p.as_ref().unwrap_or(&Value::Null);
    let message = serde_json::to_vec(plain).map_err(|e| fail(e.to_string()))?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = associated_data(&open.s, &open.f, key.id());
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: &message,
                aad: &aad,
            },
        )
        .map_err(|_| fail("encryption failed".to_owned()))?;
    Ok(PiiValue {
        v: FORMAT_VERSION,
        k: Some(key.id().to_owned()),
        n: Some(STANDARD.encode(nonce)),
        c: Some(STANDARD.encode(ciphertext)),
        p: None,
        ..open
    })
}

/// The plaintext of a sealed field, with its subject's current key. `Ok(None)` when the
/// value was sealed with another key (one deleted by a `forget` before this key was made):
/// the value is erased.
pub(crate) fn open(key: &SubjectKey, sealed: &PiiValue) -> Result<Option<Value>, OpenError> {
    let fail = |reason: &str| OpenError {
        field: sealed.f.clone(),
        subject: sealed.s.clone(),
        reason: reason.to_owned(),
    };
    if sealed.k.as_deref() != Some(key.id()) {
        return Ok(None);
    }
    let (Some(nonce), Some(ciphertext)) = (&sealed.n, &sealed.c) else {
        return Err(fail("no nonce or ciphertext"));
    };
    let nonce = STANDARD
        .decode(nonce)
        .map_err(|_| fail("the nonce is not base64"))?;
    if nonce.len() != 12 {
        return Err(fail("the nonce is not 96 bits"));
    }
    let ciphertext = STANDARD
        .decode(ciphertext)
        .map_err(|_| fail("the ciphertext is not base64"))?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.bytes()));
    let aad = associated_data(&sealed.s, &sealed.f, key.id());
    let plain = cipher
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| fail("authentication failed (the value or its subject was altered)"))?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|_| fail("the plaintext is not JSON"))
}
