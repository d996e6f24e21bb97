//! `es import`: an export's lines into an empty store, every line checked before anything is
//! written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::Path;
use std::time::Instant;

use es_core::store::StreamId;
use es_stores::OpenedStore;
use tokio::sync::mpsc;

use super::pipeline::Pipeline;
use super::summary::report;
use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, IoContext, StoreContext};
use crate::format::{self, ImportedEvent};
use crate::output::progress;

/// The input of an import, as a file that can be read twice (stdin is spooled to a temporary
/// file first).
fn import_input(file: Option<&Path>) -> CliResult<(File, String)> {
    match file {
        Some(path) => Ok((
            File::open(path).io(|| format!("opening {}", path.display()))?,
            path.display().to_string(),
        )),
        None => {
            let mut spool = tempfile::tempfile().io(|| "creating a temporary file".to_owned())?;
            std::io::copy(&mut std::io::stdin().lock(), &mut spool)
                .io(|| "reading stdin".to_owned())?;
            spool
                .rewind()
                .io(|| "rewinding the temporary file".to_owned())?;
            Ok((spool, "stdin".to_owned()))
        }
    }
}

/// Calls `f` with each non-blank line of `file` and its number.
fn for_each_line(
    file: &File,
    name: &str,
    mut f: impl FnMut(u64, &str) -> CliResult<bool>,
) -> CliResult<()> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| CliError::new(format!("{name}, line {}: {e}", number + 1)))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        if !f(number, text)? {
            return Ok(());
        }
    }
}

/// How many bad lines an import lists before it stops looking.
const MAX_REPORTED: usize = 20;

/// `es import [FILE]`.
pub(crate) async fn import(
    store: &OpenedStore,
    ctx: &mut Ctx,
    file: Option<&Path>,
    keys: Option<&Path>,
) -> CliResult<u8> {
    let started = Instant::now();
    if let Some(path) = keys {
        let count = crate::forget::import_keys(store, path).await?;
        if !ctx.json {
            eprintln!("imported {count} subject keys from {}", path.display());
        }
    }
    let target = store.store();
    let head = target
        .head_position()
        .await
        .doing("reading the target's head")?;
    if head > 0 {
        return Err(CliError::new(format!(
            "the store {} already holds events (head position {head}): import only into an \
             empty store; nothing was written",
            store.url()
        )));
    }
    let (mut input, name) = import_input(file)?;

    // Pass 1: every line is checked before anything is written.
    let mut errors: Vec<String> = Vec::new();
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut last_position = 0u64;
    let mut count = 0u64;
    for_each_line(&input, &name, |number, text| {
        match format::parse_line(text) {
            Ok(e) => {
                count += 1;
                let version = versions.entry(e.stream.clone()).or_insert(0);
                if e.sequence != *version + 1 {
                    errors.push(format!(
                        "line {number}: stream {} has sequence {} after {}: an export holds every \
                         event of a stream, in order",
                        e.stream, e.sequence, *version
                    ));
                } else {
                    *version = e.sequence;
                }
                if let Some(position) = e.position {
                    if position <= last_position {
                        errors.push(format!(
                            "line {number}: position {position} after {last_position}: the lines \
                             are not in the log's order"
                        ));
                    }
                    last_position = position;
                }
            }
            Err(message) => errors.push(format!("line {number}: {message}")),
        }
        Ok(errors.len() < MAX_REPORTED)
    })?;
    if !errors.is_empty() {
        let more = if errors.len() >= MAX_REPORTED {
            " (the first ones; there may be more)"
        } else {
            ""
        };
        return Err(CliError::new(format!(
            "{name} is not a valid export{more}:\n  {}\nnothing was written; fix the lines \
             (each must be a JSON object as `es export` writes) and run the import again",
            errors.join("\n  ")
        )));
    }
    drop(versions);

    // Pass 2: write.
    input.rewind().io(|| format!("rewinding {name}"))?;
    let bar = progress(ctx.progress, Some(count), "import");
    let mut pipeline = Pipeline::new(store, bar.clone());
    let mut batch: Vec<ImportedEvent> = Vec::with_capacity(4096);
    let mut failed: Option<CliError> = None;
    // The lines (all valid) are parsed again on a blocking task and written a page at a time.
    let (tx, mut rx) = mpsc::channel::<Vec<ImportedEvent>>(2);
    let reader_name = name.clone();
    let reader = tokio::task::spawn_blocking(move || -> CliResult<()> {
        for_each_line(&input, &reader_name, |number, text| {
            let e = format::parse_line(text)
                .map_err(|m| CliError::new(format!("{reader_name}, line {number}: {m}")))?;
            batch.push(e);
            if batch.len() >= 4096 {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(4096));
                if tx.blocking_send(full).is_err() {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok(())
    });
    'pages: while let Some(page) = rx.recv().await {
        for e in page {
            if let Err(e) = pipeline.push(e.stream, e.sequence, e.event).await {
                failed = Some(e);
                break 'pages;
            }
        }
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| CliError::new(format!("the reading task failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    pipeline.finish().await?;
    bar.finish_and_clear();
    if pipeline.written != count {
        return Err(CliError::new(format!(
            "{} of {count} events were written",
            pipeline.written
        )));
    }
    report(
        ctx,
        &format!("imported {count} events from {name} into {}", store.url()),
        count,
        started,
    )?;
    Ok(EXIT_OK)
}
