//! The bank domain under load, with its metrics served for Prometheus.
//!
//! Two kernels ("nodes") share one LMDB store, clients send deposits and withdrawals (some
//! rejected, some with a stale expected version), idle accounts are passivated and rehydrated
//! from snapshots, and two projections follow the log. Every metric of docs/metrics.md's table is
//! served at `http://ADDR/metrics` by `metrics-exporter-prometheus`.
//!
//! ```text
//! cargo run --release --example metrics                          # serves 127.0.0.1:9000, runs until stopped
//! cargo run --release --example metrics -- --addr 127.0.0.1:9100 --seconds 60 --data /tmp/es-metrics
//! curl -s http://127.0.0.1:9000/metrics | grep ^es_
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use es_examples::load::{Load, node, run, start_projections};
use es_stores::LmdbStore;
use metrics_exporter_prometheus::PrometheusBuilder;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    addr: SocketAddr,
    seconds: u64,
    data: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
        seconds: 0,
        data: std::env::temp_dir().join(format!("es-metrics-{}", std::process::id())),
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || given.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--addr" => {
                args.addr = value()?
                    .parse()
                    .map_err(|e| format!("--addr: {e} (e.g. 127.0.0.1:9000)"))?;
            }
            "--seconds" => {
                args.seconds = value()?
                    .parse()
                    .map_err(|e| format!("--seconds: {e} (0: until stopped)"))?;
            }
            "--data" => args.data = value()?.into(),
            "-h" | "--help" => {
                return Err(
                    "usage: metrics [--addr HOST:PORT] [--seconds N (0: until stopped)] [--data DIR]"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> Result<(), Error> {
    // The recorder first: kernels, runners and stores take their handles when they are made.
    PrometheusBuilder::new()
        .with_http_listener(args.addr)
        .install()?;
    eprintln!("serving metrics at http://{}/metrics", args.addr);
    let store = LmdbStore::open(&args.data)?;
    eprintln!("store: LMDB under {}", args.data.display());
    let nodes = [node(store.clone())?, node(store)?];
    start_projections(&nodes[0]).await?;
    let load = Load {
        duration: (args.seconds > 0).then(|| Duration::from_secs(args.seconds)),
        ..Load::default()
    };
    let running = tokio::spawn({
        let nodes = nodes.clone();
        let load = load.clone();
        async move { run(&nodes, &load).await }
    });
    // A summary every few seconds, from `Kernel::stats()` (the same figures as the metrics).
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    while !running.is_finished() {
        tick.tick().await;
        let stats = nodes[0].stats();
        for aggregate in &stats.aggregates {
            eprintln!(
                "node a: {} ok {}, rejected {}, conflicts {}, re-runs {}, live {}, passivated {}, rehydrated {}",
                aggregate.aggregate,
                aggregate.commands.ok,
                aggregate.commands.rejected,
                aggregate.commands.conflict,
                aggregate.conflict_reruns,
                aggregate.live,
                aggregate.passivations,
                aggregate.rehydrations
            );
        }
        for projection in &stats.projections {
            eprintln!(
                "projection {}: position {}, lag {} events / {:.3} s",
                projection.name,
                projection.position,
                projection.lag_events,
                projection.lag_seconds()
            );
        }
    }
    let report = running.await?;
    eprintln!("done: {} ok, {} errors", report.ok, report.errors);
    for node in &nodes {
        node.shutdown().await;
    }
    Ok(())
}
