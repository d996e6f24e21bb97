//! Running a crash-test child: the test binary re-invoked to run one test that writes forever
//! and prints `@@ack a b c` after each acknowledged write, SIGKILLed mid-stream.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The marker before the three numbers of an acknowledgement line.
pub const MARK: &str = "@@ack";

/// Runs test `child_test` of this binary with `envs` until it has printed `kill_after`
/// acknowledgements (or a minute passed), SIGKILLs it, and returns every acknowledgement.
/// `on_ack` sees each one as it arrives (with the count so far), e.g. to probe the store while
/// the child holds it.
pub fn run_and_kill(
    child_test: &str,
    envs: &[(&str, &str)],
    kill_after: usize,
    mut on_ack: impl FnMut(usize) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<Vec<[u64; 3]>, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut acks = Vec::new();
    let mut killed = false;
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Some(at) = line.find(MARK) else { continue };
        let fields: Vec<u64> = line[at + MARK.len()..]
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [a, b, c] = fields[..] else {
            return Err(format!("bad ack line {line:?}").into());
        };
        acks.push([a, b, c]);
        on_ack(acks.len())?;
        if !killed && (acks.len() >= kill_after || started.elapsed() > Duration::from_secs(60)) {
            child.kill()?; // SIGKILL
            killed = true;
        }
    }
    if !killed {
        child.kill()?;
    }
    let status = child.wait()?;
    if !killed {
        return Err(format!("child exited on its own: {status}").into());
    }
    Ok(acks)
}
