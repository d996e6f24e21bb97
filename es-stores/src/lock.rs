//! The directory lock: at most one open store per directory, across processes and within one.
//!
//! A store takes an exclusive POSIX record lock (`fcntl(F_SETLK)`) on a lock file in its
//! directory for as long as it is open. Record locks belong to the *process*, so, unlike a
//! `flock`, they are not shared with a child that is forked while the store is open: a child
//! spawned by any thread of the program can never keep the directory locked after the store
//! closed. Two rules of record locks shape the rest:
//!
//! - locks of one process never conflict with each other, so the directories locked by this
//!   process are kept in a process-wide registry, checked first;
//! - closing *any* descriptor of a locked file releases the process's lock on it, so the lock
//!   file is only ever opened by the [`DirLock`] that holds it (while the registry says nobody
//!   in this process does), and closed under the registry's mutex.
//!
//! On platforms without record locks the file is locked with [`std::fs::File::try_lock`].

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use es_core::store::StoreError;
use parking_lot::Mutex;

/// The lock files held by this process (their canonical paths).
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// An exclusive hold on a store directory; dropping it releases the directory.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The lock file's canonical path, its key in [`HELD`].
    path: PathBuf,
    file: Option<File>,
}

/// Why a directory could not be locked.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another store of this process holds it.
    HeldByThisProcess,
    /// Another process holds it.
    HeldByAnotherProcess,
    /// The lock file could not be opened or locked.
    Io(StoreError),
}

impl LockError {
    /// The [`StoreError`] for a store of kind `store` (e.g. `"FileStore"`) failing to open `dir`.
    pub(crate) fn into_store_error(self, store: &str, dir: &Path) -> StoreError {
        match self {
            LockError::HeldByThisProcess => StoreError::Locked(format!(
                "{} is already open in another {store} of this process",
                dir.display()
            )),
            LockError::HeldByAnotherProcess => {
                StoreError::Locked(format!("{} is open in another process", dir.display()))
            }
            LockError::Io(error) => error,
        }
    }
}

impl DirLock {
    /// Locks directory `dir` (which must exist) through its lock file `name`, creating the file.
    pub(crate) fn acquire(dir: &Path, name: &str) -> Result<DirLock, LockError> {
        let dir = dir.canonicalize().map_err(|e| {
            LockError::Io(StoreError::io(format!("resolving {}", dir.display()), e))
        })?;
        let path = dir.join(name);
        let mut held = HELD.lock();
        if held.contains(&path) {
            return Err(LockError::HeldByThisProcess);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Io(StoreError::io(format!("opening {}", path.display()), e)))?;
        match try_lock(&file) {
            Ok(true) => {}
            // Closing `file` here is harmless: this process holds no lock on it.
            Ok(false) => return Err(LockError::HeldByAnotherProcess),
            Err(e) => {
                return Err(LockError::Io(StoreError::io(
                    format!("locking {}", path.display()),
                    e,
                )));
            }
        }
        held.insert(path.clone());
        Ok(DirLock {
            path,
            file: Some(file),
        })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Under the mutex: no other `acquire` may open the file between the close (which
        // releases the lock) and the registry update.
        let mut held = HELD.lock();
        drop(self.file.take());
        held.remove(&self.path);
    }
}

/// Takes an exclusive record lock on the whole of `file` without waiting: `Ok(false)` when
/// another process holds a lock on it.
#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, fcntl_lock};
    use rustix::io::Errno;
    match fcntl_lock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::AGAIN || e == Errno::ACCESS => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes an exclusive lock on `file` without waiting: `Ok(false)` when it is held elsewhere.
#[cfg(not(unix))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_held_once_and_released_on_drop() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = DirLock::acquire(dir.path(), "LOCK").map_err(|e| format!("{e:?}"))?;
        assert!(matches!(
            DirLock::acquire(dir.path(), "LOCK"),
            Err(LockError::HeldByThisProcess)
        ));
        // Another lock file in the same directory is another lock.
        let other = DirLock::acquire(dir.path(), "OTHER").map_err(|e| format!("{e:?}"))?;
        drop(first);
        drop(other);
        DirLock::acquire(dir.path(), "LOCK").map_err(|e| format!("{e:?}"))?;
        Ok(())
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let missing = Path::new("/nonexistent/es-stores-lock-test");
        assert!(matches!(
            DirLock::acquire(missing, "LOCK"),
            Err(LockError::Io(StoreError::Io { .. }))
        ));
    }
}
