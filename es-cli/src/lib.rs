//! `es`, the operator CLI of the event store: look into a store, check it, export, import or
//! copy it between backends, and manage projection checkpoints.
//!
//! ```
//! // What `es --store memory: --quiet stats` does, from a program:
//! let code = es_cli::run_from(["es", "--store", "memory:", "--quiet", "stats"]);
//! assert_eq!(code, std::process::ExitCode::SUCCESS);
//!
//! // A usage error exits with 2:
//! let code = es_cli::run_from(["es", "--store", "nosuch:x", "stats"]);
//! assert_eq!(code, std::process::ExitCode::from(2));
//! ```
//!
//! The binary is `es`:
//!
//! ```text
//! es --store lmdb:./data streams [--json]
//! es --store lmdb:./data events <AGGREGATE_TYPE> <ID> [--json]
//! es --store lmdb:./data log [--from N] [--limit N] [--type NAME] [--aggregate TYPE] [--json]
//! es --store lmdb:./data tail [--follow]
//! es --store lmdb:./data stats
//! es --store lmdb:./data verify
//! es --store lmdb:./data export [--out FILE]
//! es --store file:./copy import [FILE]
//! es --store lmdb:./data copy --to postgres://...
//! es --store lmdb:./data projections
//! es --store lmdb:./data projections reset <NAME> --yes
//! es --store lmdb:./data dlq list [NAME] [--json]
//! es --store lmdb:./data dlq retry <NAME> <KEY>
//! es --store lmdb:./data dlq skip <NAME> <KEY> <POSITION> --reason TEXT
//! es --store lmdb:./data serve [--listen 127.0.0.1:8080]
//! ```
//!
//! The store comes from `--store URL` or the `ES_STORE` variable (see [`es_stores::open`]).
//! Exit codes: [`EXIT_OK`] (0), [`EXIT_FINDING`] (1, `verify` found problems) and
//! [`EXIT_ERROR`] (2, a usage or input error, or a store that cannot be opened or read).
//! The export format is described in [`format`](mod@format).

mod checkpoints;
mod cli;
mod context;
mod dlq;
mod error;
mod forget;
pub mod format;
mod inspect;
mod lifecycle;
mod output;
mod partitions;
pub mod serve;
mod transfer;
mod verify;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use error::{CliError, EXIT_ERROR, EXIT_FINDING, EXIT_OK};

use crate::cli::{Cli, Command, DlqAction, ProjectionsAction};
use crate::context::{Ctx, close_store, open_store};
use crate::error::CliResult;
use crate::output::Out;

/// Runs `es` with these arguments (the first is the program name) and returns its exit code.
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_ERROR } else { EXIT_OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut ctx = Ctx {
        json: cli.json,
        progress: output::progress_enabled(cli.quiet),
        out: Out::new(),
    };
    let result = runtime.block_on(run(cli, &mut ctx));
    let result = result.and_then(|code| ctx.out.flush().map(|()| code));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// The store URL from `--store` or `ES_STORE`.
fn store_url(cli: &Cli) -> CliResult<&str> {
    cli.store
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            CliError::new(
                "no store given: pass --store URL or set ES_STORE (e.g. --store lmdb:./data)",
            )
        })
}

async fn run(cli: Cli, ctx: &mut Ctx) -> CliResult<u8> {
    let url = store_url(&cli)?;
    // A file store is verified from its files, without opening it (opening repairs a torn
    // last line, and stops at the first bad one).
    #[cfg(feature = "file")]
    if let (Command::Verify, Ok(parsed)) = (&cli.command, es_stores::StoreUrl::parse(url))
        && let es_stores::StoreUrl::File(dir) = &parsed
    {
        return verify::verify_file(dir, &parsed.to_string(), ctx).await;
    }
    let create = matches!(cli.command, Command::Import { .. });
    let ordered = create;
    let store = open_store(url, create, ordered).await?;
    let result = match &cli.command {
        Command::Streams => inspect::streams(&store, ctx).await,
        Command::Events { aggregate_type, id } => {
            inspect::events(&store, ctx, aggregate_type, id).await
        }
        Command::Log {
            from,
            limit,
            event_type,
            aggregate,
        } => {
            let filter = inspect::LogFilter {
                from: *from,
                limit: *limit,
                event_type: event_type.clone(),
                aggregate: aggregate.clone(),
            };
            inspect::log(&store, ctx, &filter).await
        }
        Command::Tail { lines, follow } => inspect::tail(&store, ctx, *lines, *follow).await,
        Command::Stats => inspect::stats(&store, ctx).await,
        Command::Verify => verify::verify(&store, ctx).await,
        Command::Export { out, with_keys } => {
            transfer::export(&store, ctx, out.as_deref(), with_keys.as_deref()).await
        }
        Command::Import { file, keys } => {
            transfer::import(&store, ctx, file.as_deref(), keys.as_deref()).await
        }
        Command::Copy {
            to,
            no_snapshots,
            no_checkpoints,
            page_size,
            with_keys,
        } => {
            let options = transfer::CopyOptions {
                snapshots: !no_snapshots,
                checkpoints: !no_checkpoints,
                page_size: (*page_size).max(1),
                keys: *with_keys,
            };
            transfer::copy(&store, ctx, to, &options).await
        }
        Command::Forget { subject, by } => {
            forget::forget(&store, ctx, subject, by.as_deref()).await
        }
        Command::Erasures => forget::erasures(&store, ctx).await,
        Command::Projections { action: None } => checkpoints::projections(&store, ctx).await,
        Command::Projections {
            action: Some(ProjectionsAction::Reset { name, yes }),
        } => checkpoints::reset_projection(&store, ctx, name, *yes).await,
        Command::Dlq {
            action: DlqAction::List { name },
        } => dlq::list(&store, ctx, name.as_deref()).await,
        Command::Dlq {
            action: DlqAction::Retry { name, key },
        } => dlq::retry(&store, ctx, name, key).await,
        Command::Dlq {
            action:
                DlqAction::Skip {
                    name,
                    key,
                    position,
                    reason,
                },
        } => dlq::skip(&store, ctx, name, key, *position, reason).await,
        Command::DeleteStream {
            aggregate_type,
            id,
            hard,
            yes,
        } => {
            let stream = es_core::store::StreamId::new(aggregate_type, id);
            lifecycle::delete_stream(&store, ctx, stream, *hard, *yes).await
        }
        Command::Truncate {
            aggregate_type,
            id,
            before,
        } => {
            let stream = es_core::store::StreamId::new(aggregate_type, id);
            lifecycle::truncate(&store, ctx, stream, *before).await
        }
        Command::Serve {
            listen,
            allow_writes,
        } => serve::run(&store, ctx, listen.as_deref(), *allow_writes).await,
    };
    let closed = close_store(store).await;
    let code = result?;
    closed?;
    Ok(code)
}
