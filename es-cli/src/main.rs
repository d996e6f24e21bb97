//! The `es` binary: see the `es_cli` crate.

/// The allocator of the binary (see the `mimalloc` feature in `Cargo.toml`): events are
/// decoded, written and freed on different threads, which mimalloc's per-thread heaps handle
/// without the lock traffic of glibc's arenas.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    es_cli::run_from(std::env::args_os())
}
