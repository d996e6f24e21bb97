//! Mapping of `sqlx` errors to [`StoreError`], by what the caller can safely conclude.

use es_core::store::StoreError;

/// What the failed operation was, which decides what a lost connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Taking a connection from the pool: nothing was sent, nothing happened.
    Acquire,
    /// A read, or a write whose statement surely did not reach the server: safe to retry.
    Read,
    /// A write that may have reached the server: a lost connection leaves its outcome unknown.
    Write,
}

/// The SQLSTATE of a database error, if `error` is one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether `error` is a unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    sqlstate(error).as_deref() == Some("23505")
}

/// Maps a `sqlx` error raised while doing `op` to a [`StoreError`].
///
/// The rule: [`StoreError::Unavailable`] only when the operation surely had no effect (the
/// connection could not be had, the server rejected or cancelled the statement before its commit);
/// [`StoreError::Indeterminate`] when a write may have committed (the connection broke after the
/// statement was sent, the server was shut down around it).
pub(crate) fn map(error: sqlx::Error, op: Op, what: &str) -> StoreError {
    if op == Op::Acquire {
        return match error {
            sqlx::Error::PoolClosed => StoreError::Closed,
            sqlx::Error::PoolTimedOut => StoreError::Unavailable(format!(
                "{what}: timed out waiting for a connection from the pool (pool exhausted or \
                 server unreachable)"
            )),
            other => StoreError::Unavailable(format!("{what}: cannot connect: {other}")),
        };
    }
    let lost = |detail: String| match op {
        Op::Write => StoreError::Indeterminate(format!(
            "{what}: {detail}; the write may or may not have committed"
        )),
        _ => StoreError::Unavailable(format!("{what}: {detail}")),
    };
    match error {
        sqlx::Error::PoolClosed => StoreError::Closed,
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(format!(
            "{what}: timed out waiting for a connection from the pool"
        )),
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let message = format!("{what}: {} (SQLSTATE {code})", db.message());
            match code.as_str() {
                // The statement was cancelled (statement_timeout, lock_timeout, cancel request) or
                // lost a serialization race: the server rolled it back.
                "57014" | "55P03" | "40001" | "40P01" => StoreError::Unavailable(message),
                "53100" => StoreError::Full(message),
                _ if code.starts_with("53") => StoreError::Unavailable(message),
                // The server is shutting down or the connection is being torn down: these can
                // be raised around a commit, so a write's outcome is unknown.
                _ if code.starts_with("57P") || code.starts_with("08") => lost(message),
                _ => StoreError::Backend {
                    backend: "postgres",
                    message,
                },
            }
        }
        sqlx::Error::Io(e) => lost(format!("connection lost: {e}")),
        sqlx::Error::Tls(e) => lost(format!("TLS error: {e}")),
        sqlx::Error::Protocol(e) => lost(format!("protocol error: {e}")),
        sqlx::Error::WorkerCrashed => lost("connection worker crashed".to_owned()),
        sqlx::Error::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("{what}: cannot decode column {index}: {source}"))
        }
        sqlx::Error::Decode(e) => StoreError::Corrupt(format!("{what}: cannot decode: {e}")),
        other => StoreError::Backend {
            backend: "postgres",
            message: format!("{what}: {other}"),
        },
    }
}
