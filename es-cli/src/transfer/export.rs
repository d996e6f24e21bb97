//! `es export`: the log, in order, as JSON lines (see [`format`](crate::format)).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use es_stores::OpenedStore;

use super::source::{known_count, read_ahead};
use super::summary::report;
use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, IoContext, StoreContext};
use crate::format;
use crate::output::progress;

/// `es export [--out FILE] [--with-keys KEYS]`: the events as stored (`#[pii]` fields
/// encrypted), and the keys only into KEYS.
pub(crate) async fn export(
    store: &OpenedStore,
    ctx: &mut Ctx,
    out: Option<&Path>,
    keys: Option<&Path>,
) -> CliResult<u8> {
    let started = Instant::now();
    if let Some(path) = keys {
        let count = crate::forget::export_keys(store, path).await?;
        if !ctx.json {
            eprintln!("wrote {count} subject keys to {}", path.display());
        }
    }
    let mut file = match out {
        Some(path) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(path).io(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    // Progress would mix with the data on a terminal's stdout: only when writing a file.
    let bar = progress(
        ctx.progress && out.is_some(),
        known_count(store).await?,
        "export",
    );
    let mut pages = read_ahead(store.store(), 1, 4096);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut count = 0u64;
    while let Some(page) = pages.recv().await {
        let page = page.doing("reading the log")?;
        buf.clear();
        for e in &page {
            format::write_line(&mut buf, e)
                .map_err(|e| CliError::new(format!("encoding an event: {e}")))?;
        }
        count += page.len() as u64;
        bar.inc(page.len() as u64);
        match (&mut file, out) {
            (Some(f), Some(path)) => f
                .write_all(&buf)
                .io(|| format!("writing {}", path.display()))?,
            _ => ctx.out.bytes(&buf)?,
        }
    }
    if let (Some(f), Some(path)) = (file, out) {
        let f = f
            .into_inner()
            .map_err(|e| CliError::new(format!("writing {}: {}", path.display(), e.error())))?;
        f.sync_all()
            .io(|| format!("flushing {} to disk", path.display()))?;
    }
    bar.finish_and_clear();
    if let Some(path) = out {
        report(
            ctx,
            &format!("exported {count} events to {}", path.display()),
            count,
            started,
        )?;
    }
    Ok(EXIT_OK)
}
