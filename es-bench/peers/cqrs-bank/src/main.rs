//! W1 spread of es-rs's docs/benchmarks.md on the peer: cqrs-es 0.5 with postgres-es 0.5.
//!
//! `accounts` bank accounts, `commands` deposits of 1, `clients` concurrent clients; client
//! tasks take command indexes from a shared counter, and command `i` goes to account
//! `(i * 7919) mod accounts`, each awaited, as es-bench's W1 does. The framework is built the way
//! postgres-es documents it (`postgres_cqrs` on a sqlx pool, its `events` and `snapshots`
//! tables created from its `db/init.sql`), in a fresh schema per run that is dropped after.
//!
//! ```text
//! cqrs-bank --pg-url postgresql://postgres@127.0.0.1:5432/test --clients 64 --commands 60000
//! ```
//!
//! Prints one JSON object on stdout with es-bench's W1 figure names (`results`:
//! `commands_per_s`, `latency` {`p50_us`, `p99_us`, `p999_us`, `max_us`, `mean_us`}, `ok`,
//! `errors`, `elapsed_ms`, `events_in_store`) and a readable line on stderr. Exit status: 0
//! when every command succeeded and the store holds one event per command, 1 when not, 2 when
//! the run could not complete.

mod bank;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use postgres_es::{PostgresCqrs, postgres_aggregate_cqrs, postgres_cqrs, postgres_snapshot_cqrs};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use tokio::task::JoinSet;

use bank::{BankAccount, BankCommand};

const USAGE: &str = "usage: cqrs-bank [--pg-url URL] [--clients N] [--commands N] [--accounts N] \
[--pool N] [--mode events|snapshots:N|aggregate]
  --pg-url    PostgreSQL URL (default: the ES_PG_URL environment variable)
  --clients   concurrent clients (default 64)
  --commands  deposits in all (default 60000)
  --accounts  accounts (default 10000)
  --pool      connections in the sqlx pool (default 16, as es-rs's PostgresStore)
  --mode      postgres-es's store: `events` (postgres_cqrs, the default), `snapshots:N`
              (postgres_snapshot_cqrs, a snapshot every N events) or `aggregate`
              (postgres_aggregate_cqrs)";

/// The store cqrs-es persists through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `postgres_cqrs`: the events are the source of truth; every command loads its stream.
    Events,
    /// `postgres_snapshot_cqrs` with a snapshot every N events.
    Snapshots(usize),
    /// `postgres_aggregate_cqrs`: the serialized aggregate is the source of truth.
    Aggregate,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "events" => Ok(Mode::Events),
            "aggregate" => Ok(Mode::Aggregate),
            _ => match s.strip_prefix("snapshots:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Mode::Snapshots(n)),
                _ => Err(format!(
                    "--mode: expected events, snapshots:N (N > 0) or aggregate, got {s:?}"
                )),
            },
        }
    }

    fn name(self) -> String {
        match self {
            Mode::Events => "events".to_owned(),
            Mode::Snapshots(n) => format!("snapshots:{n}"),
            Mode::Aggregate => "aggregate".to_owned(),
        }
    }
}

/// The command line.
#[derive(Debug)]
struct Args {
    pg_url: String,
    clients: usize,
    commands: u64,
    accounts: u64,
    pool: u32,
    mode: Mode,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut pg_url = std::env::var("ES_PG_URL").ok().filter(|u| !u.is_empty());
        let (mut clients, mut commands, mut accounts, mut pool) = (64, 60_000, 10_000, 16);
        let mut mode = Mode::Events;
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(String::new());
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |what: &str| -> Result<u64, String> {
                match value.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{what}: expected a positive number, got {value:?}")),
                }
            };
            match flag.as_str() {
                "--pg-url" => pg_url = Some(value.clone()),
                "--clients" => clients = number("--clients")? as usize,
                "--commands" => commands = number("--commands")?,
                "--accounts" => accounts = number("--accounts")?,
                "--pool" => pool = u32::try_from(number("--pool")?).unwrap_or(u32::MAX),
                "--mode" => mode = Mode::parse(&value)?,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        let pg_url = pg_url.ok_or("no PostgreSQL URL: pass --pg-url URL or set ES_PG_URL")?;
        Ok(Args {
            pg_url,
            clients,
            commands,
            accounts,
            pool,
            mode,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cqrs-bank: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = writeln!(stdout, "{report}").and_then(|()| stdout.flush()) {
                eprintln!("cqrs-bank: cannot write to stdout: {e}");
                return ExitCode::from(2);
            }
            let r = &report["results"];
            let n = |v: &Value| v.as_f64().map_or(-1, |x| x.round() as i64);
            eprintln!(
                "w1 cqrs-es/postgres-es ({} clients, {} mode): {} commands/s, p50 {} µs, p99 {} µs, errors {}",
                args.clients,
                args.mode.name(),
                n(&r["commands_per_s"]),
                n(&r["latency"]["p50_us"]),
                n(&r["latency"]["p99_us"]),
                n(&r["errors"]),
            );
            for v in report["violations"].as_array().into_iter().flatten() {
                eprintln!("cqrs-bank: VIOLATION: {}", v.as_str().unwrap_or_default());
            }
            if report["ok"] == Value::Bool(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("cqrs-bank: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Creates a fresh schema with postgres-es's tables, runs W1 in it and drops it.
async fn run(args: &Args) -> Result<Value, String> {
    let connect: PgConnectOptions = args
        .pg_url
        .parse()
        .map_err(|e| format!("bad PostgreSQL URL: {e}"))?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect.clone())
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let schema = format!("cqrs_bank_{}_{nanos}", std::process::id());
    let created = sqlx::raw_sql(&create_tables(&schema))
        .execute(&admin)
        .await
        .map_err(|e| format!("creating schema {schema} and postgres-es's tables: {e}"));
    let outcome = match created {
        Ok(_) => measure(args, connect.options([("search_path", schema.as_str())])).await,
        Err(e) => Err(e),
    };
    let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await;
    admin.close().await;
    let report = outcome?;
    dropped.map_err(|e| format!("dropping schema {schema}: {e}"))?;
    Ok(report)
}

/// postgres-es's tables (its `db/init.sql`) in `schema`.
fn create_tables(schema: &str) -> String {
    format!(
        "CREATE SCHEMA {schema};
CREATE TABLE {schema}.events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE {schema}.snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);"
    )
}

/// The framework on a pool whose connections see the run's schema first (so postgres-es's
/// default table names `events` and `snapshots` are the run's), the clients, and the report.
async fn measure(args: &Args, connect: PgConnectOptions) -> Result<Value, String> {
    let pool = PgPoolOptions::new()
        .max_connections(args.pool)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let cqrs: PostgresCqrs<BankAccount> = match args.mode {
        Mode::Events => postgres_cqrs(pool.clone(), vec![], ()),
        Mode::Snapshots(n) => postgres_snapshot_cqrs(pool.clone(), vec![], n, ()),
        Mode::Aggregate => postgres_aggregate_cqrs(pool.clone(), vec![], ()),
    };
    let drive = drive(Arc::new(cqrs), args).await;
    let counted = count_events(&pool).await;
    pool.close().await;
    let drive = drive?;
    let events = counted?;
    let mut violations = Vec::new();
    if drive.errors > 0 {
        violations.push(format!(
            "W1: {} of {} commands failed (first: {})",
            drive.errors,
            args.commands,
            drive.first_error.clone().unwrap_or_default()
        ));
    }
    if drive.ok != args.commands || events != args.commands {
        violations.push(format!(
            "W1: {} commands succeeded and the store holds {events} events, expected {} of each",
            drive.ok, args.commands
        ));
    }
    let h = &drive.latency;
    Ok(json!({
        "workload": "w1",
        "peer": "cqrs-es 0.5 with postgres-es 0.5",
        "store": "postgres",
        "mode": args.mode.name(),
        "params": {
            "clients": args.clients,
            "commands": args.commands,
            "accounts": args.accounts,
            "pool_connections": args.pool,
        },
        "results": {
            "commands_per_s": rate(drive.ok, drive.elapsed),
            "latency": {
                "p50_us": h.value_at_quantile(0.50),
                "p99_us": h.value_at_quantile(0.99),
                "p999_us": h.value_at_quantile(0.999),
                "max_us": h.max(),
                "mean_us": h.mean().round(),
            },
            "ok": drive.ok,
            "errors": drive.errors,
            "elapsed_ms": drive.elapsed.as_millis() as u64,
            "events_in_store": events,
        },
        "ok": violations.is_empty(),
        "violations": violations,
        "notes": drive.first_error.iter().map(|e| format!("first error: {e}")).collect::<Vec<_>>(),
    }))
}

/// What the clients measured.
struct Drive {
    elapsed: Duration,
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

/// An empty latency histogram in microseconds (1 µs to 10 min, 3 significant digits), as
/// es-bench's.
fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// `clients` tasks take command indexes from a shared counter and send `Deposit { amount: 1 }`
/// to account `(i * 7919) mod accounts`, each awaited.
async fn drive(cqrs: Arc<PostgresCqrs<BankAccount>>, args: &Args) -> Result<Drive, String> {
    let ids: Arc<Vec<String>> = Arc::new((0..args.accounts).map(|n| format!("acc-{n}")).collect());
    let next = Arc::new(AtomicU64::new(0));
    let (commands, accounts) = (args.commands, args.accounts);
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..args.clients {
        let (cqrs, ids, next) = (cqrs.clone(), ids.clone(), next.clone());
        let mut latency = histogram()?;
        set.spawn(async move {
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= commands {
                    break;
                }
                let id = &ids[(i.wrapping_mul(7919) % accounts) as usize];
                let sent = Instant::now();
                match cqrs.execute(id, BankCommand::Deposit { amount: 1 }).await {
                    Ok(()) => {
                        ok += 1;
                        let micros = sent.elapsed().as_micros().max(1);
                        latency.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (latency, ok, errors, first_error)
        });
    }
    let mut total = Drive {
        elapsed: Duration::ZERO,
        latency: histogram()?,
        ok: 0,
        errors: 0,
        first_error: None,
    };
    while let Some(done) = set.join_next().await {
        let (latency, ok, errors, first_error) =
            done.map_err(|e| format!("a client task failed: {e}"))?;
        total
            .latency
            .add(&latency)
            .map_err(|e| format!("merging histograms: {e}"))?;
        total.ok += ok;
        total.errors += errors;
        if total.first_error.is_none() {
            total.first_error = first_error;
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// The number of rows in the run's `events` table.
async fn count_events(pool: &PgPool) -> Result<u64, String> {
    let row = sqlx::query("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .map_err(|e| format!("counting events: {e}"))?;
    let n: i64 = row
        .try_get(0)
        .map_err(|e| format!("counting events: {e}"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Commands per second, rounded, as es-bench reports it.
fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(
            ["--pg-url", "postgresql://x@127.0.0.1/db"]
                .iter()
                .chain(args)
                .map(|s| (*s).to_owned()),
        )
    }

    #[test]
    fn defaults_are_benchmarks_md_w1_with_our_pool() {
        let a = parse(&[]).expect("parses");
        assert_eq!(
            (a.clients, a.commands, a.accounts, a.pool, a.mode),
            (64, 60_000, 10_000, 16, Mode::Events)
        );
    }

    #[test]
    fn options_and_modes_are_read_and_bad_ones_refused() {
        let a = parse(&[
            "--clients",
            "8",
            "--commands",
            "100",
            "--mode",
            "snapshots:5",
        ])
        .expect("parses");
        assert_eq!((a.clients, a.commands), (8, 100));
        assert_eq!(a.mode, Mode::Snapshots(5));
        assert_eq!(
            parse(&["--mode", "aggregate"]).expect("parses").mode,
            Mode::Aggregate
        );
        assert!(parse(&["--mode", "snapshots:0"]).is_err());
        assert!(parse(&["--clients", "0"]).is_err());
        assert!(parse(&["--clients"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
    }
}
