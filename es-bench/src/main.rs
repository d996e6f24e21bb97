//! The benchmark program: runs the workloads W1–W7 and Repeat of docs/benchmarks.md against a chosen store and
//! prints one JSON object per workload and store on stdout (and a readable line on stderr).
//!
//! ```text
//! cargo run --release -p es-bench -- w1 --store lmdb --clients 1024
//! cargo run --release -p es-bench -- all --quick --pg-url "$ES_PG_URL" --data /tmp/bench
//! ```
//!
//! Each workload and store prints one JSON object on one line of stdout:
//!
//! ```text
//! {"workload":"w1","store":"lmdb","durability":"durable","quick":false,
//!  "params":{"clients":64,"commands":200000,"accounts":10000,"events":0,"quick":false},
//!  "runs":3,"results":{...medians of the workload's figures...},"per_run":[{...},...],
//!  "ok":true,"violations":[],"notes":[...],
//!  "fsync_baseline":{"median_us":..,"p10_us":..,"p90_us":..,"samples":50,"dir":".."},
//!  "machine":{"cpus":2,"loadavg_1m_start":..,"loadavg_1m_end":..}}
//! ```
//!
//! `metrics_recorder` says which metrics recorder was installed (`--metrics prometheus`, to
//! measure what recording the metrics costs; `none` by default). `fsync_baseline` comes with
//! durable stores only, `per_run` with `--runs` above 1, and
//! `error` (a message) when a run could not complete. The figures per workload:
//!
//! - W1: `commands_per_s`, `latency` (`p50_us`, `p99_us`, `p999_us`, `max_us`, `mean_us`),
//!   `ok`, `errors`, `events_in_store`, and (where `/proc` has them) `threads` and `cpu_busy`:
//!   per thread name the CPU time, the time spent runnable but waiting for a CPU and the
//!   slices over the commands, and the share of the machine's CPUs the process used;
//! - W2: `commands_per_s`, `last_10pct_commands_per_s`, `last_10pct_ratio`, `latency`,
//!   `final_version`, and for durable stores `store_append_median_us` (sequential one-event
//!   store appends), `commit_limit_commands_per_s` and `fraction_of_commit_limit`;
//! - W3: `successful_commands_per_s`, `successes`, `failures`, `final_balance`,
//!   `expected_balance`, `final_version`, `latency`;
//! - W4: `stream_events`, `load_events_per_s`, and `without_snapshot` / `with_snapshot`, each
//!   with `open_ms`, `replay_ms`, `events_replayed`, `events_per_s`, `first_answer_ms`,
//!   `snapshot_version`;
//! - W5: `events`, `streams`, `load_events_per_s`, `selective` and `all_events` (each with
//!   `events_per_s`, `handled`, `ms`);
//! - W6: `rss_bytes_per_live_aggregate` (and `..._excluding_store`), `store_bytes_per_event`,
//!   `live`, RSS figures, and `passivation` (`live_after`, `rss_after_bytes`, ...);
//! - W7: `batch_1`, `batch_100`, `batch_1000`, each with `events`, `appenders`,
//!   `events_per_s`, `appends_per_s`, `ms`, `threads` and `cpu_busy` (as W1's);
//! - Repeat: `with_fresh_ids`, `duplicates_answered` and `without_ids` (latency figures each,
//!   in nanoseconds: `p50_ns`, ...), `duplicate_p50_over_fresh_p50`, `fresh_id_p50_over_no_id_p50`.
//!
//! `es-bench plot RESULTS.json --out FILE.svg` draws commands/s by clients from a results file
//! (its format: the `plot` module) as an SVG; the README's plot is
//! `cargo run -p es-bench -- plot docs/results/w1.json --out docs/w1.svg`.
//!
//! `es-bench compare --pg-url URL` (with `--features postgres`) runs W1 on PostgreSQL side by
//! side with the peer, cqrs-es 0.5 with postgres-es (`es-bench/peers/cqrs-bank`, its own Cargo
//! project, built first): `--rounds` (5) alternating rounds of `es-bench w1 --store postgres`'s
//! W1 and the peer's, same clients, commands and accounts (64, 60,000, 10,000), 16 connections
//! each; one JSON object with per side the medians of `commands_per_s`, `p50_us`, `p99_us`,
//! `ratio_of_medians`, per-round `ratios` and figures, load averages (module `compare`).
//!
//! Exit status: 0 when every run completed and passed its correctness checks, 1 when a check
//! failed (W1 errors, W3 failures or a wrong balance, wrong event counts, ...), 2 when a run
//! could not complete (a store error, bad options).

mod compare;
mod domain;
mod error;
mod plot;
mod report;
mod stores;
mod sys;
mod workloads;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};

use error::BenchError;
use report::{RunResult, human, median_value};
use stores::{LmdbDurability, StoreConfig, StoreEnv, StoreKind};
use workloads::{Overrides, Params, Workload};

/// What to run: one workload, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// W1 spread.
    W1,
    /// W2 hot.
    W2,
    /// W3 contend.
    W3,
    /// W4 rehydrate.
    W4,
    /// W5 catch-up.
    W5,
    /// W6 memory.
    W6,
    /// W7 append.
    W7,
    /// Repeat: explicit command ids and duplicates.
    Repeat,
    /// Transfers through the `transfers` process manager.
    Transfers,
    /// Every workload on every available store.
    All,
}

/// The recorder this process installed (the W6 child process installs the same).
static INSTALLED: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();

/// A metrics recorder to install before anything runs (kernels and stores take their metric
/// handles when they are built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Recorder {
    /// No recorder: every metric is a no-op handle.
    None,
    /// `metrics-exporter-prometheus`'s recorder (no HTTP listener), with upkeep and a render
    /// every 5 s, as a scrape would.
    Prometheus,
}

impl Recorder {
    fn name(self) -> &'static str {
        match self {
            Recorder::None => "none",
            Recorder::Prometheus => "prometheus",
        }
    }

    /// Installs the recorder (globally) and starts its upkeep thread.
    fn install(self) -> Result<(), BenchError> {
        let _ = INSTALLED.set(self);
        match self {
            Recorder::None => Ok(()),
            Recorder::Prometheus => {
                let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                    .install_recorder()
                    .map_err(|e| BenchError::Usage(format!("cannot install the recorder: {e}")))?;
                std::thread::Builder::new()
                    .name("es-bench-metrics".to_owned())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(std::time::Duration::from_secs(5));
                            handle.run_upkeep();
                            let _scrape = handle.render();
                        }
                    })
                    .map_err(|e| BenchError::io("starting the metrics upkeep thread", e))?;
                Ok(())
            }
        }
    }
}

/// Runs the workloads of docs/benchmarks.md and prints one JSON line per workload and store.
#[derive(Debug, Parser)]
#[command(
    name = "es-bench",
    version,
    about,
    after_help = "Plot: es-bench plot RESULTS.json --out FILE.svg draws commands/s by clients from a results file as an SVG.\nCompare: es-bench compare --pg-url URL runs W1 on PostgreSQL against cqrs-es/postgres-es (es-bench compare --help)."
)]
struct Cli {
    /// The workload, or `all` (every workload on every available store).
    target: Target,
    /// The store (default: memory; with `all`: every store, postgres only with a URL).
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// Concurrent clients (W1, W3), store appenders (W7) or transfer requesters (transfers).
    #[arg(long)]
    clients: Option<usize>,
    /// Commands (W1, W2, W3) or transfers (transfers).
    #[arg(long)]
    commands: Option<u64>,
    /// Accounts (W1, transfers), streams (W5, W7) or live aggregates (W6).
    #[arg(long)]
    accounts: Option<u64>,
    /// Events (W4 stream length, W5 log size, W7 events per batch size).
    #[arg(long)]
    events: Option<u64>,
    /// A small smoke run (no timing targets; correctness still checked).
    #[arg(long)]
    quick: bool,
    /// W6: send every command with an explicit command id, so each live aggregate keeps an
    /// idempotency window (measures what the window costs).
    #[arg(long)]
    command_ids: bool,
    /// W5: make every tenth stream a `vault` of `Deposited` events (10% of the log, under the
    /// bank's event name) and also time a projection filtered on that aggregate type, side by
    /// side with the name-filtered 10% projection.
    #[arg(long)]
    w5_vaults: bool,
    /// W5: also rebuild the all-events projection (`kernel.projections().rebuild`) while a
    /// task reads its `state()` in a loop; reports the rebuild's time and the reads' latency.
    #[arg(long)]
    w5_rebuild: bool,
    /// W5: also time a handler that waits 100 µs per event (simulated I/O) in 1 and this
    /// many partitions, and report both rates.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    partitions: Option<u32>,
    /// W7: append `j` goes to stream `(j * 7919) mod accounts` (W1's order), not `j mod accounts`.
    #[arg(long)]
    w7_spread: bool,
    /// Directory under which file and LMDB data (a fresh directory per run, removed after) and
    /// the fsync probe go (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// PostgreSQL URL (default: the ES_PG_URL environment variable). Each run uses a fresh
    /// schema, dropped after.
    #[arg(long, value_name = "URL")]
    pg_url: Option<String>,
    /// Repeat each workload this many times and report the medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// LMDB commit durability.
    #[arg(long, value_enum, default_value_t = LmdbDurability::Durable)]
    lmdb_durability: LmdbDurability,
    /// A metrics recorder to install first (to measure what recording the metrics costs).
    #[arg(long, value_enum, default_value_t = Recorder::None)]
    metrics: Recorder,
}

/// One workload on one store with its parameters.
struct Job {
    workload: Workload,
    store: StoreKind,
    params: Params,
}

fn main() -> ExitCode {
    // `plot` is not a workload: it reads a results file and runs no store or runtime.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "plot") {
        return plot::main(std::env::args_os().skip(1));
    }
    // Nor is `compare`: it runs W1 on PostgreSQL against the peer (module `compare`).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "compare")
    {
        return compare::main(std::env::args_os().skip(1));
    }
    let cli = Cli::parse();
    sys::init_log();
    if let Err(e) = cli.metrics.install() {
        eprintln!("es-bench: {e}");
        return ExitCode::from(2);
    }
    let outcome = match sys::run_task("es-bench", run(cli)) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    match outcome {
        Ok(Status::Passed) => ExitCode::SUCCESS,
        Ok(Status::Violations) => {
            eprintln!("es-bench: FAILED: correctness violations (see the runs above)");
            ExitCode::from(1)
        }
        Ok(Status::Errors) => {
            eprintln!("es-bench: FAILED: some runs could not complete (see above)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("es-bench: error: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Passed,
    Violations,
    Errors,
}

/// The workloads and stores to run.
fn plan(cli: &Cli, pg_url: Option<&str>) -> Result<Vec<Job>, BenchError> {
    let overrides = Overrides {
        clients: cli.clients,
        commands: cli.commands,
        accounts: cli.accounts,
        events: cli.events,
        quick: cli.quick,
        command_ids: cli.command_ids,
        w5_vaults: cli.w5_vaults,
        w5_rebuild: cli.w5_rebuild,
        partitions: cli.partitions,
        w7_spread: cli.w7_spread,
    };
    let mut jobs = Vec::new();
    let mut push = |workload: Workload, store: StoreKind, overrides: &Overrides| {
        let params = Params::resolve(workload, store.is_durable(), overrides);
        jobs.push(Job {
            workload,
            store,
            params,
        });
    };
    let single = match cli.target {
        Target::W1 => Some(Workload::W1),
        Target::W2 => Some(Workload::W2),
        Target::W3 => Some(Workload::W3),
        Target::W4 => Some(Workload::W4),
        Target::W5 => Some(Workload::W5),
        Target::W6 => Some(Workload::W6),
        Target::W7 => Some(Workload::W7),
        Target::Repeat => Some(Workload::Repeat),
        Target::Transfers => Some(Workload::Transfers),
        Target::All => None,
    };
    if let Some(workload) = single {
        let store = cli.store.unwrap_or(StoreKind::Memory);
        if workload == Workload::W6 && store != StoreKind::Memory {
            return Err(BenchError::Usage(
                "W6 measures the memory store only (docs/benchmarks.md): use --store memory"
                    .to_owned(),
            ));
        }
        if store == StoreKind::Postgres && pg_url.is_none() {
            return Err(BenchError::Usage(
                "--store postgres needs --pg-url URL or ES_PG_URL".to_owned(),
            ));
        }
        push(workload, store, &overrides);
        return Ok(jobs);
    }
    let stores: Vec<StoreKind> = match cli.store {
        Some(store) => vec![store],
        None => StoreKind::ALL
            .into_iter()
            .filter(|s| {
                if *s != StoreKind::Postgres {
                    return true;
                }
                if !cfg!(feature = "postgres") {
                    eprintln!(
                        "es-bench: skipping the postgres store: this build has no `postgres` \
                         feature (cargo run --release -p es-bench --features postgres -- ...)"
                    );
                    return false;
                }
                if pg_url.is_none() {
                    eprintln!("es-bench: skipping the postgres store: no --pg-url or ES_PG_URL");
                    return false;
                }
                true
            })
            .collect(),
    };
    for workload in Workload::ALL {
        for &store in &stores {
            if workload == Workload::W6 && store != StoreKind::Memory {
                eprintln!(
                    "es-bench: skipping w6 on {}: W6 measures the memory store only",
                    store.name()
                );
                continue;
            }
            push(workload, store, &overrides);
            if workload == Workload::W1 && cli.clients.is_none() {
                let many = Overrides {
                    clients: Some(1_024),
                    ..overrides.clone()
                };
                push(workload, store, &many);
            }
        }
    }
    Ok(jobs)
}

async fn run(cli: Cli) -> Result<Status, BenchError> {
    let pg_url = cli
        .pg_url
        .clone()
        .or_else(|| std::env::var("ES_PG_URL").ok().filter(|u| !u.is_empty()));
    let jobs = plan(&cli, pg_url.as_deref())?;
    let config = StoreConfig {
        data_root: cli.data.clone(),
        pg_url,
        lmdb_durability: cli.lmdb_durability,
    };
    let fsync = if jobs.iter().any(|j| j.store.is_durable()) {
        let dir = match &config.data_root {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("create {}", dir.display()), e))?;
        let baseline = sys::fsync_baseline(&dir, 50)?;
        eprintln!(
            "es-bench: fsync baseline in {}: median {} µs (p10 {}, p90 {}) over 50 fsyncs of 4 KiB",
            dir.display(),
            human(baseline.get("median_us")),
            human(baseline.get("p10_us")),
            human(baseline.get("p90_us")),
        );
        Some(baseline)
    } else {
        None
    };
    let mut status = Status::Passed;
    for job in &jobs {
        let line = run_job(job, &config, &cli, fsync.as_ref()).await;
        status = status.max(line);
    }
    Ok(status)
}

/// Runs one job `--runs` times and prints its JSON line and readable line.
async fn run_job(job: &Job, config: &StoreConfig, cli: &Cli, fsync: Option<&Value>) -> Status {
    let label = format!(
        "{} {}{}",
        job.workload.name(),
        job.store.name(),
        match job.workload {
            Workload::W1 | Workload::W3 => format!(" ({} clients)", job.params.clients),
            _ => String::new(),
        }
    );
    let load_start = sys::load_average();
    let mut results: Vec<RunResult> = Vec::new();
    let mut error = None;
    for run in 1..=cli.runs {
        if cli.runs > 1 {
            eprintln!("es-bench: {label}: run {run} of {}", cli.runs);
        }
        match run_once(job, config).await {
            Ok(result) => results.push(result),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let load_end = sys::load_average();
    let figures: Vec<Value> = results
        .iter()
        .map(|r| Value::Object(r.figures.clone()))
        .collect();
    let refs: Vec<&Value> = figures.iter().collect();
    let medians = median_value(&refs);
    let mut violations: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for r in &results {
        for v in &r.violations {
            if !violations.contains(v) {
                violations.push(v.clone());
            }
        }
        for n in &r.notes {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
    }
    let durability = match job.store {
        StoreKind::Memory => "none",
        StoreKind::Lmdb => cli.lmdb_durability.name(),
        StoreKind::File => "fsync per group commit",
        StoreKind::Postgres => "server commit",
    };
    let mut out = json!({
        "workload": job.workload.name(),
        "store": job.store.name(),
        "durability": durability,
        "metrics_recorder": cli.metrics.name(),
        "quick": job.params.quick,
        "params": job.params,
        "runs": results.len(),
        "results": medians,
        "ok": violations.is_empty() && error.is_none(),
        "violations": violations,
        "notes": notes,
        "machine": {
            "cpus": sys::cpus(),
            "loadavg_1m_start": load_start,
            "loadavg_1m_end": load_end,
        },
    });
    if let Some(obj) = out.as_object_mut() {
        if figures.len() > 1 {
            obj.insert("per_run".to_owned(), Value::Array(figures.clone()));
        }
        if job.store.is_durable()
            && let Some(fsync) = fsync
        {
            obj.insert("fsync_baseline".to_owned(), fsync.clone());
        }
        if let Some(e) = &error {
            obj.insert("error".to_owned(), Value::String(e.clone()));
        }
    }
    print_line(&out);
    let runs = if results.len() > 1 {
        format!(" [median of {}]", results.len())
    } else {
        String::new()
    };
    match &error {
        Some(e) => eprintln!("es-bench: {label}: ERROR: {e}"),
        None => eprintln!("{label}: {}{runs}", headline(job.workload, &medians)),
    }
    for v in &violations {
        eprintln!("es-bench: {label}: VIOLATION: {v}");
    }
    if error.is_some() {
        Status::Errors
    } else if !violations.is_empty() {
        Status::Violations
    } else {
        Status::Passed
    }
}

/// Set in the environment of a child process that runs W6 on its own.
const CHILD_ENV: &str = "ES_BENCH_W6_CHILD";

/// One run on a fresh store environment, which is removed afterwards. W6 runs in a fresh child
/// process, so that its RSS figures are not skewed by memory that earlier runs left with the
/// allocator.
async fn run_once(job: &Job, config: &StoreConfig) -> Result<RunResult, BenchError> {
    if job.workload == Workload::W6 && std::env::var_os(CHILD_ENV).is_none() {
        let params = job.params.clone();
        return tokio::task::spawn_blocking(move || run_w6_child(&params)).await?;
    }
    let env = StoreEnv::create(job.store, config).await?;
    let result = workloads::run(job.workload, &env, &job.params).await;
    let closed = env.close().await;
    let result = result?;
    closed?;
    Ok(result)
}

/// Runs W6 in a child process (this program) and reads its JSON line.
fn run_w6_child(params: &Params) -> Result<RunResult, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("find this program", e))?;
    let mut command = std::process::Command::new(&exe);
    command
        .args(["w6", "--store", "memory", "--runs", "1", "--accounts"])
        .arg(params.accounts.to_string())
        .env(CHILD_ENV, "1");
    if params.quick {
        command.arg("--quick");
    }
    if params.command_ids {
        command.arg("--command-ids");
    }
    if let Some(recorder) = INSTALLED.get() {
        command.args(["--metrics", recorder.name()]);
    }
    let output = command
        .output()
        .map_err(|e| BenchError::io(format!("run {}", exe.display()), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    let Some(line) = line else {
        return Err(BenchError::Task(format!(
            "the W6 child process exited with {} without a result: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    };
    if let Some(e) = line.get("error").and_then(Value::as_str) {
        return Err(BenchError::Task(format!("W6 child: {e}")));
    }
    let strings = |key: &str| -> Vec<String> {
        line.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut result = RunResult {
        violations: strings("violations"),
        notes: strings("notes"),
        ..RunResult::default()
    };
    if let Some(figures) = line.get("results").and_then(Value::as_object) {
        result.figures = figures.clone();
    }
    result
        .notes
        .push("W6 ran in a fresh child process of this program".to_owned());
    Ok(result)
}

/// Prints one JSON object on its own line on stdout.
fn print_line(value: &Value) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{value}").and_then(|()| stdout.flush()) {
        eprintln!("es-bench: cannot write to stdout: {e}");
    }
}

/// The readable summary of a workload's figures.
fn headline(workload: Workload, r: &Value) -> String {
    let g = |path: &str| r.pointer(path);
    match workload {
        Workload::W1 => format!(
            "{} commands/s, p50 {} µs, p99 {} µs, errors {}",
            human(g("/commands_per_s")),
            human(g("/latency/p50_us")),
            human(g("/latency/p99_us")),
            human(g("/errors")),
        ),
        Workload::W2 => format!(
            "{} commands/s, last 10% {} commands/s (ratio {}), p50 {} µs{}",
            human(g("/commands_per_s")),
            human(g("/last_10pct_commands_per_s")),
            human(g("/last_10pct_ratio")),
            human(g("/latency/p50_us")),
            match g("/fraction_of_commit_limit") {
                Some(f) => format!(", {} of the commit limit", human(Some(f))),
                None => String::new(),
            }
        ),
        Workload::W3 => format!(
            "{} successful commands/s, failures {}, final balance {} of {}",
            human(g("/successful_commands_per_s")),
            human(g("/failures")),
            human(g("/final_balance")),
            human(g("/expected_balance")),
        ),
        Workload::W4 => format!(
            "{} events: without snapshots replay {} ms ({} events/s), first answer {} ms; with \
             snapshots replay {} ms, first answer {} ms; version-1 events through two upcasters \
             {} events/s",
            human(g("/stream_events")),
            human(g("/without_snapshot/replay_ms")),
            human(g("/without_snapshot/events_per_s")),
            human(g("/without_snapshot/first_answer_ms")),
            human(g("/with_snapshot/replay_ms")),
            human(g("/with_snapshot/first_answer_ms")),
            human(g("/upcast_v1_chain2/events_per_s")),
        ),
        Workload::W5 => {
            let line = format!(
                "{} events: 10% projection {} events/s, all-events projection {} events/s",
                human(g("/events")),
                human(g("/selective/events_per_s")),
                human(g("/all_events/events_per_s")),
            );
            let line = line + &workloads::slow_io::summary(r);
            match g("/aggregate_selective/events_per_s") {
                None => line,
                vaults => format!(
                    "{line}, 10% aggregate-filtered projection {} events/s",
                    human(vaults)
                ),
            }
        }
        Workload::W6 => format!(
            "{} bytes RSS per live aggregate ({} excluding the store's event); after passivation: \
             live {}, RSS {} bytes above the start",
            human(g("/rss_bytes_per_live_aggregate")),
            human(g("/rss_bytes_per_live_aggregate_excluding_store")),
            human(g("/passivation/live_after")),
            human(g("/passivation/rss_after_minus_before_bytes")),
        ),
        Workload::W7 => format!(
            "batch 1: {} events/s ({} events), batch 100: {} events/s, batch 1000: {} events/s",
            human(g("/batch_1/events_per_s")),
            human(g("/batch_1/events")),
            human(g("/batch_100/events_per_s")),
            human(g("/batch_1000/events_per_s")),
        ),
        Workload::Repeat => format!(
            "p50 ns: fresh id {}, duplicate {}, no id {}; duplicate/fresh {}",
            human(g("/with_fresh_ids/p50_ns")),
            human(g("/duplicates_answered/p50_ns")),
            human(g("/without_ids/p50_ns")),
            human(g("/duplicate_p50_over_fresh_p50")),
        ),
        Workload::Transfers => format!(
            "{} completed transfers/s ({} requesters), lag request -> deposit p50 {} µs, p99 {} µs",
            human(g("/completed_transfers_per_s")),
            human(g("/requesters")),
            human(g("/lag_requested_to_deposit/p50_us")),
            human(g("/lag_requested_to_deposit/p99_us")),
        ),
    }
}
