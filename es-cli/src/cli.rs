//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
Store URLs: memory:, file:DIR, lmdb:DIR, postgres://USER@HOST:PORT/DB[?schema=NAME]
(those this build was compiled with).

Exit codes: 0 ok; 1 `verify` found problems; 2 a usage or input error, or a store that
cannot be opened or read.";

/// `es`: look into an event store, check it, export, import or copy it, manage projections.
#[derive(Debug, Parser)]
#[command(name = "es", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// The store to work on, e.g. `lmdb:./data` (or the ES_STORE variable).
    #[arg(long, env = "ES_STORE", value_name = "URL", global = true)]
    pub store: Option<String>,
    /// Machine-readable output: JSON lines for listings, one JSON object for summaries.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars (they are shown only when stdout is a terminal anyway).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The streams, with their aggregate type, id and version.
    Streams,
    /// The events of one stream.
    Events {
        /// The stream's aggregate type, e.g. `bank_account`.
        aggregate_type: String,
        /// The stream's aggregate id, e.g. `acc-1`.
        id: String,
    },
    /// The global log, in position order.
    Log {
        /// Start at this position.
        #[arg(long, default_value_t = 1, value_name = "N")]
        from: u64,
        /// Show at most N events (0: no limit).
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u64,
        /// Only events of this type.
        #[arg(long = "type", value_name = "NAME")]
        event_type: Option<String>,
        /// Only events of streams of this aggregate type.
        #[arg(long, value_name = "TYPE")]
        aggregate: Option<String>,
    },
    /// The last events of the log; with --follow, then the log as it grows (Ctrl-C stops).
    Tail {
        /// How many of the last events to show first.
        #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
        lines: usize,
        /// Keep printing new events as they are committed.
        #[arg(long, short)]
        follow: bool,
    },
    /// Counts: events, streams, events per type, head position, snapshots, checkpoints.
    Stats,
    /// Checks the store's consistency; exit 0 when consistent, 1 with a report of each problem.
    Verify,
    /// Writes every event as JSON lines, with the whole envelope.
    Export {
        /// Write to FILE instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also write the subject keys to KEYS (readable by its owner only). Without it the
        /// export carries `#[pii]` fields encrypted and no key: they read as redacted.
        #[arg(long, value_name = "KEYS")]
        with_keys: Option<PathBuf>,
    },
    /// Reads JSON lines (from `es export`) into an empty store, keeping order, sequences and
    /// envelopes. Checks every line before writing any.
    Import {
        /// The file to read (default: stdin).
        file: Option<PathBuf>,
        /// Also import the subject keys written by `export --with-keys KEYS`.
        #[arg(long, value_name = "KEYS")]
        keys: Option<PathBuf>,
    },
    /// Copies every event (then snapshots and checkpoints) into another store, page by page.
    /// A rerun after an interruption continues where the copy stopped.
    Copy {
        /// The target store's URL.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Do not copy snapshots.
        #[arg(long)]
        no_snapshots: bool,
        /// Do not copy projection checkpoints.
        #[arg(long)]
        no_checkpoints: bool,
        /// Events read per page.
        #[arg(long, default_value_t = 4096, value_name = "N")]
        page_size: usize,
        /// Also copy the subject keys. Without them the copy carries `#[pii]` fields
        /// encrypted, and they read as redacted there.
        #[arg(long)]
        with_keys: bool,
    },
    /// Forgets a subject (erasure by crypto-shredding): deletes its key and records the
    /// erasure; its `#[pii]` fields then read as their replacements everywhere, copies and
    /// exports included.
    Forget {
        /// The subject's id.
        subject: String,
        /// Who asks for the erasure, recorded with it (default: $USER).
        #[arg(long, value_name = "WHO")]
        by: Option<String>,
    },
    /// The erasure records: which subject was forgotten, when and by whom.
    Erasures,
    /// A read-only web console for the store (streams, events, the log with live follow,
    /// projections, verify) and its JSON API under /api/; serves until Ctrl-C.
    Serve {
        /// The address to listen on (default 127.0.0.1:8080, loopback only); a non-loopback
        /// address such as 0.0.0.0:8080 is taken only from here, with a warning.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Let the console retry and skip dead letters (edits checkpoints, like `es dlq`);
        /// without it the console only reads.
        #[arg(long)]
        allow_writes: bool,
    },
    /// Deletes a stream: appends a tombstone, after which the kernel refuses commands to it
    /// (its events stay readable). With --hard --yes, also removes its events (all but the
    /// tombstone) and snapshots; the positions of other events do not change.
    DeleteStream {
        /// The stream's aggregate type, e.g. `bank_account`.
        aggregate_type: String,
        /// The stream's aggregate id, e.g. `acc-1`.
        id: String,
        /// Also remove the stream's events and snapshots (needs --yes).
        #[arg(long)]
        hard: bool,
        /// Confirms --hard.
        #[arg(long)]
        yes: bool,
    },
    /// Removes the events of a stream before sequence SEQ; refused unless a snapshot at
    /// version SEQ-1 or later exists (so the stream stays rehydratable) and SEQ is at most
    /// the stream's version.
    Truncate {
        /// The stream's aggregate type.
        aggregate_type: String,
        /// The stream's aggregate id.
        id: String,
        /// The first sequence kept.
        #[arg(long, value_name = "SEQ")]
        before: u64,
    },
    /// Projection checkpoints and their lag; `projections reset NAME --yes` resets one.
    Projections {
        /// What to do with the projections (default: list them).
        #[command(subcommand)]
        action: Option<ProjectionsAction>,
    },
    /// Dead letters of projections run under `ErrorPolicy::Park`: list them, ask for a key's
    /// retry, or skip one. `retry` and `skip` edit the checkpoint only while no runner of the
    /// projection runs (an embedded store is then not open elsewhere; on PostgreSQL the CLI
    /// takes the runner's lease for the edit); the runner carries a retry out when it next
    /// starts.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
    },
}

/// `es dlq ...`.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Lists the dead letters of one projection, or of every projection that has some.
    List {
        /// The projection's name (default: every one).
        name: Option<String>,
    },
    /// Marks the parked events of a key (a stream, `type/id`) for a retry: the projection's
    /// runner re-runs them in order when it next starts.
    Retry {
        /// The projection's name.
        name: String,
        /// The key: the stream, `type/id`.
        key: String,
    },
    /// Drops one parked event without applying it, keeping the reason in its record.
    Skip {
        /// The projection's name.
        name: String,
        /// The key: the stream, `type/id`.
        key: String,
        /// The parked event's position.
        position: u64,
        /// Why it is skipped (kept in the record).
        #[arg(long)]
        reason: String,
    },
}

/// `es projections ...`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsAction {
    /// Resets a projection's checkpoint to position 0 without state: its runner rebuilds it
    /// from the start of the log when it next starts.
    Reset {
        /// The projection's name.
        name: String,
        /// Confirms the reset (required).
        #[arg(long)]
        yes: bool,
    },
}
