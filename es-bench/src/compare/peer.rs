//! The peer's side of `es-bench compare`: building the program in `es-bench/peers/cqrs-bank`
//! (cqrs-es 0.5 with postgres-es) and running it for one round.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::BenchError;
use crate::workloads::Params;

/// Connections in the peer's sqlx pool: as many as `es_stores::open` gives `PostgresStore`.
pub(super) const POOL_CONNECTIONS: u32 = 16;

/// The peer's folder, from es-bench's.
const PEER_DIR: &str = "peers/cqrs-bank";

/// The peer's binary (its Cargo target name).
const PEER_BIN: &str = "cqrs-bank";

/// `peer` beside the folder of this binary's profile (`target/release/es-bench` ->
/// `target/peer`).
pub(super) fn default_target() -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("find this program", e))?;
    exe.parent()
        .and_then(Path::parent)
        .map(|target| target.join("peer"))
        .ok_or_else(|| {
            BenchError::Usage(format!(
                "no target folder above {}: pass --peer-target-dir DIR",
                exe.display()
            ))
        })
}

/// Builds the peer in release mode into `target_dir` and returns its binary's path (from
/// cargo's JSON messages); cargo's progress goes to stderr.
pub(super) fn build(target_dir: &Path) -> Result<PathBuf, BenchError> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(PEER_DIR)
        .join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "es-bench compare: building the peer: cargo build --release --locked --manifest-path {} --target-dir {}",
        manifest.display(),
        target_dir.display()
    );
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--locked"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::io(format!("run {}", Path::new(&cargo).display()), e))?;
    let mut executable = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.map_err(|e| BenchError::io("read cargo's messages", e))?;
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if message["reason"] == "compiler-artifact"
                && message["target"]["name"] == PEER_BIN
                && let Some(path) = message["executable"].as_str()
            {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| BenchError::io("wait for cargo", e))?;
    match executable {
        Some(path) if status.success() => Ok(path),
        _ => Err(BenchError::Task(format!(
            "building the peer ({}) failed ({status}); see cargo's messages above",
            manifest.display()
        ))),
    }
}

/// The peer's side of a round: its binary at `peer` with W1's parameters `p` and postgres-es's
/// `mode`; reads its JSON line.
pub(super) async fn run(
    peer: &Path,
    pg_url: &str,
    p: &Params,
    mode: &str,
) -> Result<(Value, Vec<String>), BenchError> {
    let mut command = Command::new(peer);
    command
        .arg("--pg-url")
        .arg(pg_url)
        .args(["--clients", &p.clients.to_string()])
        .args(["--commands", &p.commands.to_string()])
        .args(["--accounts", &p.accounts.to_string()])
        .args(["--pool", &POOL_CONNECTIONS.to_string()])
        .args(["--mode", mode])
        .stdin(Stdio::null());
    let peer = peer.display().to_string();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .map_err(|e| BenchError::io(format!("run the peer {peer}"), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: Option<Value> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Some(line) = line.filter(|l| l["results"].is_object()) else {
        return Err(BenchError::Task(format!(
            "the peer exited with {} without a result: {}",
            output.status,
            stderr.trim()
        )));
    };
    let violations = line["violations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((line["results"].clone(), violations))
}
