//! Writing to the terminal: stdout lines, tables, JSON, progress bars.

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::time::Duration;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// Buffered stdout. A closed pipe (`es log | head`) ends the command quietly.
pub(crate) struct Out {
    inner: BufWriter<Stdout>,
}

/// The error a write to a closed stdout turns into: the command stops, and exits 0.
pub(crate) fn is_closed_pipe(error: &CliError) -> bool {
    error.to_string() == CLOSED_PIPE
}

const CLOSED_PIPE: &str = "stdout was closed";

impl Out {
    pub(crate) fn new() -> Self {
        Self {
            inner: BufWriter::with_capacity(1 << 16, std::io::stdout()),
        }
    }

    fn map(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::new(CLOSED_PIPE)
        } else {
            CliError::new(format!("writing to stdout: {e}"))
        }
    }

    /// Writes one line.
    pub(crate) fn line(&mut self, text: impl std::fmt::Display) -> CliResult<()> {
        writeln!(self.inner, "{text}").map_err(Self::map)
    }

    /// Writes raw bytes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> CliResult<()> {
        self.inner.write_all(bytes).map_err(Self::map)
    }

    /// Writes one value as a line of JSON.
    pub(crate) fn json(&mut self, value: &impl Serialize) -> CliResult<()> {
        serde_json::to_writer(&mut self.inner, value)
            .map_err(|e| CliError::new(format!("writing JSON to stdout: {e}")))?;
        self.inner.write_all(b"\n").map_err(Self::map)
    }

    /// Flushes what is buffered.
    pub(crate) fn flush(&mut self) -> CliResult<()> {
        self.inner.flush().map_err(Self::map)
    }
}

/// A table with a header row (none when `header` is empty).
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !header.is_empty() {
        table.set_header(header.iter().copied());
    }
    table
}

/// Whether progress bars may be drawn: stdout is a terminal and `--quiet` was not given.
pub(crate) fn progress_enabled(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal()
}

/// A progress bar of `len` events (on stderr; a spinner when the count is not known),
/// hidden unless [`progress_enabled`].
pub(crate) fn progress(enabled: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = if len.is_some() {
        "{msg:>10} [{bar:40}] {percent:>3}% {human_pos}/{human_len} events, {per_sec}, eta {eta}"
    } else {
        "{msg:>10} {spinner} {human_pos} events, {per_sec}"
    };
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A payload for a table cell: its JSON text, or its size when it is not text, cut at
/// `max` characters.
pub(crate) fn payload_cell(payload: &[u8], max: usize) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if crate::format::payload_as_json(payload).is_some() => {
            if text.chars().count() > max {
                let cut: String = text.chars().take(max.saturating_sub(1)).collect();
                format!("{cut}…")
            } else {
                text.to_owned()
            }
        }
        _ => format!("<{} bytes>", payload.len()),
    }
}
