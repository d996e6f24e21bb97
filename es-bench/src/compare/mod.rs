//! `es-bench compare`: W1 spread on PostgreSQL, this project's `PostgresStore` side by side with
//! the peer (cqrs-es 0.5 with postgres-es, the program in `es-bench/peers/cqrs-bank`), in
//! alternating rounds on one machine and one server.
//!
//! Our side runs the W1 workload of `es-bench w1 --store postgres` (a fresh schema per round);
//! the peer runs as a child process (its own fresh schema per round), built first with
//! `cargo build --release --locked --manifest-path es-bench/peers/cqrs-bank/Cargo.toml` unless
//! `--peer-bin` names a built one. Both use a pool of 16 connections. The order of the two sides
//! alternates from round to round, so neither always runs on a warmer (or more loaded) machine.
//! Before the measured rounds, `--warmup` rounds (default 1) run both sides unmeasured: without
//! them the first side of the first round ran on a server whose caches the other side never
//! had cold. Before each side's run the server takes a checkpoint (`CHECKPOINT`; `--no-checkpoint`
//! skips it), so that neither side starts with the other's WAL still to write out, nor has a
//! checkpoint forced into its run by it.
//!
//! Prints one JSON object on stdout: the parameters, per side the medians over the rounds of
//! `commands_per_s`, `p50_us` and `p99_us` (and of every W1 figure under `medians`), the ratio
//! of the medians of commands/s (ours over the peer's), the per-round ratios and their median,
//! and every round's figures with the 1-minute load average at the start and end of the round
//! and of each side's run. A readable summary goes to stderr. Exit status as `es-bench`'s.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{Map, Value, json};

use crate::error::BenchError;
use crate::report::{human, median_value};
use crate::stores::{LmdbDurability, StoreConfig, StoreEnv, StoreKind};
use crate::sys;
use crate::workloads::{self, Overrides, Params, Workload};

mod peer;

use peer::POOL_CONNECTIONS;

/// Runs W1 spread on PostgreSQL with this project and with cqrs-es/postgres-es, round by round,
/// and prints one JSON object comparing them.
#[derive(Debug, Parser)]
#[command(name = "es-bench compare")]
struct CompareCli {
    /// PostgreSQL URL (default: the ES_PG_URL environment variable).
    #[arg(long, value_name = "URL")]
    pg_url: Option<String>,
    /// Rounds; each runs both sides once (default 5, with `--quick` 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
    /// Concurrent clients on each side.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    clients: u64,
    /// Deposits per side and round (default 60,000, with `--quick` 2,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    commands: Option<u64>,
    /// Accounts.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    accounts: u64,
    /// Unmeasured rounds before the measured ones, each running both sides (default 1, with
    /// `--quick` 0). Their figures are reported under `warmup`, apart from the medians.
    #[arg(long)]
    warmup: Option<u32>,
    /// Do not ask the server for a checkpoint before each side's run (a user without the
    /// `pg_checkpoint` role or superuser rights gets a warning and the runs go on without).
    #[arg(long)]
    no_checkpoint: bool,
    /// A smoke run: 2,000 commands, 1 round (the figures mean little).
    #[arg(long)]
    quick: bool,
    /// A built peer binary to run instead of building it.
    #[arg(long, value_name = "PATH")]
    peer_bin: Option<PathBuf>,
    /// Where to build the peer (default: `peer` beside the folder of es-bench's binary's
    /// profile, e.g. `target/peer`).
    #[arg(long, value_name = "DIR")]
    peer_target_dir: Option<PathBuf>,
    /// postgres-es's store on the peer: `events` (`postgres_cqrs`, as its README), `snapshots:N`
    /// or `aggregate`.
    #[arg(long, default_value = "events", value_name = "MODE")]
    peer_mode: String,
}

impl CompareCli {
    /// Rounds: `--rounds`, else 5 (1 with `--quick`).
    fn rounds(&self) -> u32 {
        self.rounds.unwrap_or(if self.quick { 1 } else { 5 })
    }

    /// Unmeasured rounds: `--warmup`, else 1 (0 with `--quick`).
    fn warmup(&self) -> u32 {
        self.warmup.unwrap_or(u32::from(!self.quick))
    }

    /// Commands per side and round: `--commands`, else 60,000 (2,000 with `--quick`).
    fn commands(&self) -> u64 {
        self.commands
            .unwrap_or(if self.quick { 2_000 } else { 60_000 })
    }
}

/// The parameters both sides run with.
struct Setup {
    pg_url: String,
    rounds: u32,
    warmup: u32,
    checkpoint: bool,
    params: Params,
    peer: PathBuf,
    peer_mode: String,
}

/// `es-bench compare ARGS` (`args` starts with `compare`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = CompareCli::parse_from(args);
    let outcome = match sys::run_task("es-bench compare", compare(cli)) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("es-bench compare: FAILED: correctness violations (see above)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("es-bench compare: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the rounds and prints the comparison; returns the number of violations.
async fn compare(cli: CompareCli) -> Result<usize, BenchError> {
    if !cfg!(feature = "postgres") {
        return Err(BenchError::Usage(
            "compare needs the `postgres` store: cargo run --release -p es-bench --features \
             postgres -- compare ..."
                .to_owned(),
        ));
    }
    let pg_url = cli
        .pg_url
        .clone()
        .or_else(|| std::env::var("ES_PG_URL").ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| BenchError::Usage("compare needs --pg-url URL or ES_PG_URL".to_owned()))?;
    let overrides = Overrides {
        clients: Some(usize::try_from(cli.clients).unwrap_or(usize::MAX)),
        commands: Some(cli.commands()),
        accounts: Some(cli.accounts),
        quick: cli.quick,
        ..Overrides::default()
    };
    let mut build_seconds = None;
    let peer = match &cli.peer_bin {
        Some(path) => path.clone(),
        None => {
            let target = match &cli.peer_target_dir {
                Some(dir) => dir.clone(),
                None => peer::default_target()?,
            };
            let started = Instant::now();
            let path = tokio::task::spawn_blocking(move || peer::build(&target)).await??;
            let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
            eprintln!(
                "es-bench compare: peer built in {seconds} s: {}",
                path.display()
            );
            build_seconds = Some(seconds);
            path
        }
    };
    let setup = Setup {
        pg_url,
        rounds: cli.rounds(),
        warmup: cli.warmup(),
        checkpoint: !cli.no_checkpoint,
        params: Params::resolve(Workload::W1, true, &overrides),
        peer,
        peer_mode: cli.peer_mode.clone(),
    };
    let mut rounds: Vec<Value> = Vec::new();
    let mut warmup: Vec<Value> = Vec::new();
    let mut violations: Vec<String> = Vec::new();
    let mut error = None;
    let schedule = (1..=setup.warmup)
        .map(Round::Warmup)
        .chain((1..=setup.rounds).map(Round::Measured));
    for round in schedule {
        match run_round(&setup, round).await {
            Ok((value, found)) => {
                violations.extend(found);
                match round {
                    Round::Warmup(_) => warmup.push(value),
                    Round::Measured(_) => rounds.push(value),
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let mut out = summary(&setup, &rounds, &violations);
    if let Some(obj) = out.as_object_mut() {
        let binary = setup.peer.display().to_string();
        let build = json!({ "binary": binary, "build_seconds": build_seconds });
        obj.insert("peer_build".to_owned(), build);
        obj.insert("warmup".to_owned(), Value::Array(warmup));
        if let Some(e) = &error {
            obj.insert("error".to_owned(), Value::String(e.to_string()));
        }
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}")
        .and_then(|()| stdout.flush())
        .map_err(|e| BenchError::io("write to stdout", e))?;
    eprintln!("{}", headline(&setup, &out));
    for v in &violations {
        eprintln!("es-bench compare: VIOLATION: {v}");
    }
    match error {
        Some(e) => Err(e),
        None => Ok(violations.len()),
    }
}

/// A round: unmeasured (before the measured ones) or measured, numbered from 1 in its kind.
#[derive(Debug, Clone, Copy)]
enum Round {
    Warmup(u32),
    Measured(u32),
}

impl Round {
    /// Which side runs first: ours in odd measured rounds, the peer in even ones (A B, B A, A B:
    /// each side runs first as often as last). The `warmup` warm-up rounds go on the same
    /// pattern backwards, as rounds 0, -1, ...: the last one runs the peer first.
    fn order(self, warmup: u32) -> [&'static str; 2] {
        let ours_first = match self {
            Round::Measured(n) => n % 2 == 1,
            Round::Warmup(n) => warmup.saturating_sub(n) % 2 == 1,
        };
        if ours_first {
            ["ours", "peer"]
        } else {
            ["peer", "ours"]
        }
    }

    /// `round 2 of 5`, `warm-up round 1 of 1`.
    fn describe(self, setup: &Setup) -> String {
        let of = match self {
            Round::Warmup(_) => setup.warmup,
            Round::Measured(_) => setup.rounds,
        };
        format!("{} of {of}", self.name())
    }

    /// `round 2`, `warm-up round 1`: how violations and the per-round summary name it.
    fn name(self) -> String {
        match self {
            Round::Warmup(n) => format!("warm-up round {n}"),
            Round::Measured(n) => format!("round {n}"),
        }
    }

    fn number(self) -> u32 {
        match self {
            Round::Warmup(n) | Round::Measured(n) => n,
        }
    }
}

/// One round: both sides once, in the round's order (see [`Round::order`]), each after a
/// checkpoint unless `--no-checkpoint`. Returns the round's JSON and its violations.
async fn run_round(setup: &Setup, round: Round) -> Result<(Value, Vec<String>), BenchError> {
    let order = round.order(setup.warmup);
    let load_start = sys::load_average();
    let mut sides = Map::new();
    let mut violations = Vec::new();
    for side in order {
        eprintln!("es-bench compare: {}: {side}", round.describe(setup));
        let checkpoint_ms = if setup.checkpoint {
            checkpoint(&setup.pg_url)
                .await
                .map_err(|e| {
                    eprintln!(
                        "es-bench compare: warning: CHECKPOINT failed, {side} runs without one: {e}"
                    );
                })
                .ok()
        } else {
            None
        };
        let side_start = sys::load_average();
        let (figures, found) = if side == "ours" {
            run_ours(setup).await?
        } else {
            peer::run(&setup.peer, &setup.pg_url, &setup.params, &setup.peer_mode).await?
        };
        violations.extend(
            found
                .into_iter()
                .map(|v| format!("{}, {side}: {v}", round.name())),
        );
        sides.insert(
            side.to_owned(),
            json!({
                "results": figures,
                "loadavg_1m_start": side_start,
                "loadavg_1m_end": sys::load_average(),
                "checkpoint_ms": checkpoint_ms,
            }),
        );
    }
    let cps = |side: &str| sides[side]["results"]["commands_per_s"].as_f64();
    let ratio = ratio(cps("ours"), cps("peer"));
    let mut value = json!({
        "round": round.number(),
        "warmup": matches!(round, Round::Warmup(_)),
        "order": order,
        "ratio": ratio,
        "loadavg_1m_start": load_start,
        "loadavg_1m_end": sys::load_average(),
    });
    if let Some(obj) = value.as_object_mut() {
        obj.extend(sides);
    }
    let g = |side: &str, path: &str| human(value[side]["results"].pointer(path));
    eprintln!(
        "es-bench compare: {}: ours {} commands/s (p50 {} µs, p99 {} µs), peer {} commands/s \
         (p50 {} µs, p99 {} µs), ratio {}, load {} -> {}",
        round.name(),
        g("ours", "/commands_per_s"),
        g("ours", "/latency/p50_us"),
        g("ours", "/latency/p99_us"),
        g("peer", "/commands_per_s"),
        g("peer", "/latency/p50_us"),
        g("peer", "/latency/p99_us"),
        human(value.get("ratio")),
        human(value.get("loadavg_1m_start")),
        human(value.get("loadavg_1m_end")),
    );
    Ok((value, violations))
}

/// Asks the server at `pg_url` for a checkpoint, on a connection of its own; returns how long it
/// took, in milliseconds.
async fn checkpoint(pg_url: &str) -> Result<u64, String> {
    #[cfg(feature = "postgres")]
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(pg_url)
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let done = sqlx::query("CHECKPOINT")
            .execute(&mut conn)
            .await
            .map(|_| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
            .map_err(|e| e.to_string());
        // The checkpoint is what was asked for; a failed goodbye changes nothing.
        let _ = conn.close().await;
        done
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = pg_url;
        Err("this es-bench was built without the `postgres` feature".to_owned())
    }
}

/// Our side: W1 on a fresh PostgreSQL store environment, as `es-bench w1 --store postgres`.
async fn run_ours(setup: &Setup) -> Result<(Value, Vec<String>), BenchError> {
    let config = StoreConfig {
        data_root: None,
        pg_url: Some(setup.pg_url.clone()),
        lmdb_durability: LmdbDurability::Durable,
    };
    let env = StoreEnv::create(StoreKind::Postgres, &config).await?;
    let result = workloads::run(Workload::W1, &env, &setup.params).await;
    let closed = env.close().await;
    let result = result?;
    closed?;
    Ok((Value::Object(result.figures), result.violations))
}

/// `ours / peer`, to two decimals.
fn ratio(ours: Option<f64>, peer: Option<f64>) -> Option<f64> {
    match (ours, peer) {
        (Some(ours), Some(peer)) if peer > 0.0 => Some((ours / peer * 100.0).round() / 100.0),
        _ => None,
    }
}

/// The JSON object: parameters, medians per side, ratios, rounds.
fn summary(setup: &Setup, rounds: &[Value], violations: &[String]) -> Value {
    let side = |name: &str| -> Value {
        let results: Vec<&Value> = rounds.iter().map(|r| &r[name]["results"]).collect();
        let medians = median_value(&results);
        json!({
            "commands_per_s": medians["commands_per_s"],
            "p50_us": medians["latency"]["p50_us"],
            "p99_us": medians["latency"]["p99_us"],
            "medians": medians,
        })
    };
    let (ours, peer) = (side("ours"), side("peer"));
    let ratios: Vec<Value> = rounds.iter().map(|r| r["ratio"].clone()).collect();
    let ratio_refs: Vec<&Value> = ratios.iter().collect();
    let p = &setup.params;
    json!({
        "comparison": "w1",
        "store": "postgres",
        "ours": ours,
        "peer": peer,
        "ratio_of_medians": ratio(ours["commands_per_s"].as_f64(), peer["commands_per_s"].as_f64()),
        "median_of_ratios": median_value(&ratio_refs),
        "ratios": ratios,
        "params": {
            "clients": p.clients,
            "commands": p.commands,
            "accounts": p.accounts,
            "rounds": setup.rounds,
            "warmup_rounds": setup.warmup,
            "checkpoint_before_each_side": setup.checkpoint,
            "quick": p.quick,
            "pool_connections": POOL_CONNECTIONS,
            "peer": "cqrs-es 0.5 with postgres-es 0.5",
            "peer_mode": setup.peer_mode,
        },
        "rounds": rounds,
        "ok": violations.is_empty() && rounds.len() == setup.rounds as usize,
        "violations": violations,
        "machine": { "cpus": sys::cpus() },
    })
}

/// The readable summary.
fn headline(setup: &Setup, out: &Value) -> String {
    let g = |path: &str| human(out.pointer(path));
    let p = &setup.params;
    format!(
        "compare w1 postgres ({} clients, {} commands, {} accounts), median of {} round(s): es-rs \
         {} commands/s (p50 {} µs, p99 {} µs), cqrs-es {} commands/s (p50 {} µs, p99 {} µs); \
         ratio of medians {}, per round {}",
        p.clients,
        human(Some(&json!(p.commands))),
        human(Some(&json!(p.accounts))),
        out["rounds"].as_array().map_or(0, Vec::len),
        g("/ours/commands_per_s"),
        g("/ours/p50_us"),
        g("/ours/p99_us"),
        g("/peer/commands_per_s"),
        g("/peer/p50_us"),
        g("/peer/p99_us"),
        g("/ratio_of_medians"),
        out["ratios"]
            .as_array()
            .map(|a| a
                .iter()
                .map(|r| human(Some(r)))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_ours_over_the_peers_to_two_decimals() {
        assert_eq!(ratio(Some(20_200.0), Some(5_000.0)), Some(4.04));
        assert_eq!(ratio(Some(1.0), Some(3.0)), Some(0.33));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }

    fn round(ours: f64, peer: f64, p50: u64) -> Value {
        let side = |cps: f64| json!({"results": {"commands_per_s": cps, "latency": {"p50_us": p50, "p99_us": p50 * 4}}});
        json!({"ours": side(ours), "peer": side(peer), "ratio": ratio(Some(ours), Some(peer))})
    }

    #[test]
    fn the_summary_holds_medians_per_side_and_both_ratios() {
        let cli = CompareCli::parse_from(["compare", "--rounds", "3"]);
        let setup = Setup {
            pg_url: String::new(),
            rounds: cli.rounds(),
            warmup: cli.warmup(),
            checkpoint: !cli.no_checkpoint,
            params: Params::resolve(Workload::W1, true, &Overrides::default()),
            peer: PathBuf::new(),
            peer_mode: cli.peer_mode,
        };
        let rounds = [
            round(20_000.0, 5_000.0, 100),
            round(30_000.0, 4_000.0, 300),
            round(24_000.0, 8_000.0, 200),
        ];
        let out = summary(&setup, &rounds, &[]);
        assert_eq!(out["ours"]["commands_per_s"], json!(24_000.0));
        assert_eq!(out["peer"]["commands_per_s"], json!(5_000.0));
        assert_eq!(out["ours"]["p50_us"], json!(200));
        assert_eq!(out["peer"]["p99_us"], json!(800));
        assert_eq!(out["ratio_of_medians"], json!(4.8));
        assert_eq!(out["ratios"], json!([4.0, 7.5, 3.0]));
        assert_eq!(out["median_of_ratios"], json!(4.0));
        assert_eq!(out["ok"], json!(true));
        let short = summary(&setup, &rounds[..2], &[]);
        assert_eq!(short["ok"], json!(false), "a missing round is not ok");
        let violated = summary(
            &setup,
            &rounds,
            &["round 1, peer: W1: 1 of 2 failed".to_owned()],
        );
        assert_eq!(violated["ok"], json!(false));
    }

    #[test]
    fn quick_is_one_round_of_two_thousand_commands_and_defaults_are_w1_on_postgres() {
        let quick = CompareCli::parse_from(["compare", "--quick"]);
        assert_eq!((quick.rounds(), quick.commands()), (1, 2_000));
        assert_eq!(quick.warmup(), 0, "a smoke run has no warm-up");
        let quick = CompareCli::parse_from(["compare", "--quick", "--rounds", "3"]);
        assert_eq!((quick.rounds(), quick.commands()), (3, 2_000));
        let cli = CompareCli::parse_from(["compare"]);
        assert_eq!((cli.rounds(), cli.commands()), (5, 60_000));
        assert_eq!((cli.clients, cli.accounts), (64, 10_000));
        assert_eq!(cli.peer_mode, "events");
        assert_eq!(cli.warmup(), 1);
        assert!(
            !cli.no_checkpoint,
            "a checkpoint before each side by default"
        );
        let cold = CompareCli::parse_from(["compare", "--warmup", "0", "--no-checkpoint"]);
        assert_eq!(cold.warmup(), 0);
        assert!(cold.no_checkpoint);
        assert!(CompareCli::try_parse_from(["compare", "--rounds", "0"]).is_err());
    }

    #[test]
    fn sides_alternate_across_warm_up_and_measured_rounds() {
        let orders: Vec<[&str; 2]> = [
            Round::Warmup(1),
            Round::Measured(1),
            Round::Measured(2),
            Round::Measured(3),
        ]
        .into_iter()
        .map(|r| r.order(1))
        .collect();
        assert_eq!(
            orders,
            [
                ["peer", "ours"],
                ["ours", "peer"],
                ["peer", "ours"],
                ["ours", "peer"]
            ]
        );
        // With two warm-up rounds, the first runs ours first and the second the peer first.
        assert_eq!(Round::Warmup(1).order(2), ["ours", "peer"]);
        assert_eq!(Round::Warmup(2).order(2), ["peer", "ours"]);
        assert_eq!(Round::Warmup(1).name(), "warm-up round 1");
        assert_eq!(Round::Measured(3).name(), "round 3");
    }
}
