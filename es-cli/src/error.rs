//! The CLI's errors and its exit codes.

use std::process::ExitCode;

use es_core::store::StoreError;

/// Exit code: the command did its work and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit code: `verify` found problems (it printed them).
pub const EXIT_FINDING: u8 = 1;
/// Exit code: the command could not do its work (bad usage or input, a store that cannot be
/// opened or read).
pub const EXIT_ERROR: u8 = 2;

/// Why a command failed: a message for the user, already saying what to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    message: String,
}

impl CliError {
    /// A usage or input error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// A store error met while doing `what`, with advice where there is some.
    pub fn store(what: &str, error: &StoreError) -> Self {
        let advice = match error {
            StoreError::Locked(_) => {
                "; the store is in use by another process: stop that process and try again \
                 (an embedded store is opened by one process at a time), or work on a copy"
            }
            StoreError::Unavailable(_) => {
                "; check that the server is running and that the URL (and its schema=) is right"
            }
            StoreError::Corrupt(_) => "; run `es verify` for a report of every problem",
            StoreError::Incompatible(_) => {
                "; check the URL's scheme (file: or lmdb:) and that this `es` is as new as the program that wrote the store"
            }
            StoreError::Full(_) => "; free some space and run the command again",
            _ => "",
        };
        Self::new(format!("{what}: {error}{advice}"))
    }

    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(EXIT_ERROR)
    }
}

/// The result of a command.
pub type CliResult<T> = Result<T, CliError>;

/// Adds context to store results.
pub(crate) trait StoreContext<T> {
    /// Maps a store error into a [`CliError`] saying what was being done.
    fn doing(self, what: &str) -> CliResult<T>;
}

impl<T> StoreContext<T> for Result<T, StoreError> {
    fn doing(self, what: &str) -> CliResult<T> {
        self.map_err(|e| CliError::store(what, &e))
    }
}

/// Adds context to I/O results.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error into a [`CliError`] saying what was being done.
    fn io(self, what: impl FnOnce() -> String) -> CliResult<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io(self, what: impl FnOnce() -> String) -> CliResult<T> {
        self.map_err(|e| CliError::new(format!("{}: {e}", what())))
    }
}
