//! The benchmark program's error type: anything that stops a run before it can report.

use es_core::kernel::BuildError;
use es_core::{ProjectionError, StoreError};

/// Why a run could not complete (as opposed to a correctness violation, which is reported in
/// the run's JSON and makes the program exit non-zero at the end).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A store operation failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The kernel could not be built.
    #[error("kernel: {0}")]
    Build(#[from] BuildError),
    /// A projection failed.
    #[error("projection: {0}")]
    Projection(#[from] ProjectionError),
    /// An event could not be encoded.
    #[error("event: {0}")]
    Event(#[from] es_core::EventError),
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed where the workload cannot go on.
    #[error("dispatch: {0}")]
    Dispatch(String),
    /// A benchmark task panicked or was cancelled.
    #[error("task: {0}")]
    Task(String),
    /// An unusable combination of options.
    #[error("{0}")]
    Usage(String),
    /// PostgreSQL setup or teardown failed.
    #[cfg(feature = "postgres")]
    #[error("postgres: {0}")]
    Postgres(String),
}

impl BenchError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<tokio::task::JoinError> for BenchError {
    fn from(e: tokio::task::JoinError) -> Self {
        BenchError::Task(e.to_string())
    }
}
