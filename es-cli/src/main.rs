//! The `es` binary: see the `es_cli` crate.

fn main() -> std::process::ExitCode {
    es_cli::run_from(std::env::args_os())
}
