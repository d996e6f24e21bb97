//! Erasure from the command line: `es forget SUBJECT`, `es erasures`, the keys carried by
//! `export --with-keys`, `import --keys` and `copy --with-keys`, and the view of payloads
//! with their PII fields opened that `events` and `log` print.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use es_core::erasure::ErasureLayer;
use es_core::store::{EventStore, KeyStore, StoredKey, SubjectKey};
use es_stores::OpenedStore;
use serde::{Deserialize, Serialize};

use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, IoContext, StoreContext};

/// One line of a keys file: a subject and its key.
#[derive(Serialize, Deserialize)]
struct KeyLine {
    subject: String,
    #[serde(flatten)]
    key: StoredKey,
}

/// The store's key store, or an error saying it has none.
fn keys_of(store: &OpenedStore) -> CliResult<Arc<dyn KeyStore>> {
    store.store().key_store().ok_or_else(|| {
        CliError::new(format!(
            "the store {} keeps no subject keys, so it has nothing to forget",
            store.url()
        ))
    })
}

/// The store's log as a program reads it: PII fields in clear while their subject's key
/// exists, their replacements once forgotten.
pub(crate) fn readable(store: &OpenedStore) -> Arc<dyn EventStore> {
    let es = store.store();
    let layer = Arc::new(ErasureLayer::new(es.key_store()));
    layer.event_store(es)
}

/// Who an erasure is recorded as asked by, when `--by` is not given.
fn default_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map_or_else(|| "es-cli".to_owned(), |u| format!("{u} (es-cli)"))
}

/// `es forget SUBJECT [--by WHO]`.
pub(crate) async fn forget(
    store: &OpenedStore,
    ctx: &mut Ctx,
    subject: &str,
    by: Option<&str>,
) -> CliResult<u8> {
    let keys = keys_of(store)?;
    let by = by.map_or_else(default_by, str::to_owned);
    let record = keys
        .forget(subject, &by)
        .await
        .doing(&format!("forgetting subject {subject:?}"))?;
    if ctx.json {
        ctx.out.json(&record)?;
    } else {
        let what = if record.key_deleted {
            "its key is deleted"
        } else {
            "it had no key (nothing of it was encrypted)"
        };
        ctx.out.line(format!(
            "forgot subject {:?}: {what}; erasure recorded at {} by {}",
            record.subject,
            es_cli_time(&record.erased_at),
            record.erased_by
        ))?;
    }
    Ok(EXIT_OK)
}

fn es_cli_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    crate::format::format_timestamp(at)
}

/// `es erasures`: every erasure record, oldest first.
pub(crate) async fn erasures(store: &OpenedStore, ctx: &mut Ctx) -> CliResult<u8> {
    let records = keys_of(store)?
        .erasures()
        .await
        .doing("reading the erasure records")?;
    if ctx.json {
        ctx.out.json(&records)?;
    } else {
        for r in &records {
            ctx.out.line(format!(
                "{}  {}  by {}{}",
                es_cli_time(&r.erased_at),
                r.subject,
                r.erased_by,
                if r.key_deleted { "" } else { "  (had no key)" }
            ))?;
        }
        ctx.out
            .line(format!("{} erasures recorded", records.len()))?;
    }
    Ok(EXIT_OK)
}

/// Copies every key of `from` into `to` (a subject that has a key there keeps it); how many.
pub(crate) async fn copy_keys(from: &OpenedStore, to: &OpenedStore) -> CliResult<u64> {
    let source = keys_of(from)?;
    let target = to.store().key_store().ok_or_else(|| {
        CliError::new(format!(
            "the target store {} keeps no subject keys",
            to.url()
        ))
    })?;
    let keys = source
        .export_keys()
        .await
        .doing("reading the source's keys")?;
    for (subject, key) in &keys {
        target
            .import_key(subject, key.clone())
            .await
            .doing("writing a key into the target")?;
    }
    Ok(keys.len() as u64)
}

/// Writes every key of the store to `path` (created readable by its owner only); how many.
pub(crate) async fn export_keys(store: &OpenedStore, path: &Path) -> CliResult<u64> {
    let keys = keys_of(store)?
        .export_keys()
        .await
        .doing("reading the keys")?;
    let mut text = Vec::new();
    for (subject, key) in &keys {
        let line = KeyLine {
            subject: subject.clone(),
            key: key.to_stored(),
        };
        serde_json::to_writer(&mut text, &line)
            .map_err(|e| CliError::new(format!("encoding a key: {e}")))?;
        text.push(b'\n');
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .io(|| format!("creating {}", path.display()))?;
    file.write_all(&text)
        .io(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .io(|| format!("flushing {} to disk", path.display()))?;
    Ok(keys.len() as u64)
}

/// Reads a keys file (from `export --with-keys`) into the store's key store; how many. Every
/// line is checked before any key is written.
pub(crate) async fn import_keys(store: &OpenedStore, path: &Path) -> CliResult<u64> {
    let text = std::fs::read_to_string(path).io(|| format!("reading {}", path.display()))?;
    let mut keys: Vec<(String, SubjectKey)> = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |e: String| CliError::new(format!("{} line {}: {e}", path.display(), n + 1));
        let line: KeyLine = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let key = line.key.to_key().map_err(|e| bad(e.to_string()))?;
        keys.push((line.subject, key));
    }
    let target = keys_of(store)?;
    for (subject, key) in &keys {
        target
            .import_key(subject, key.clone())
            .await
            .doing("writing a key")?;
    }
    Ok(keys.len() as u64)
}
