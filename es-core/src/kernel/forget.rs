//! [`Kernel::forget`]: erasure of one subject's personal data.

use crate::erasure::ErasureLayer;
use crate::store::{ErasureRecord, StoreError};

use super::handle::Kernel;

impl Kernel {
    /// Forgets `subject`: deletes its key, then records the erasure (who: `"kernel"`; use
    /// [`Kernel::forget_by`] to name who asked). From then on every read of its `#[pii]`
    /// fields, in events and snapshots, yields the fields' replacements; live aggregates
    /// drop their in-memory state and rehydrate on next use. See [`crate::erasure`].
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let kernel = Kernel::builder().store(MemoryStore::new()).build()?;
    /// let record = kernel.forget("customer-7").await?;
    /// assert_eq!((record.subject.as_str(), record.key_deleted), ("customer-7", false));
    /// # kernel.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn forget(&self, subject: &str) -> Result<ErasureRecord, StoreError> {
        self.forget_by(subject, "kernel").await
    }

    /// Like [`Kernel::forget`], recording `erased_by` as who asked for the erasure (an
    /// operator or service id; not personal data of the subject).
    pub async fn forget_by(
        &self,
        subject: &str,
        erased_by: &str,
    ) -> Result<ErasureRecord, StoreError> {
        let record = self.erasure().forget(subject, erased_by).await;
        // Even when the record failed, the key may be gone: drop plaintext held in memory.
        self.reload_all();
        let record = record?;
        tracing::info!(
            subject,
            erased_by,
            key_deleted = record.key_deleted,
            "subject forgotten"
        );
        Ok(record)
    }

    /// The erasure layer of this kernel, to read a store as the kernel does (the CLI uses it).
    pub fn erasure_layer(&self) -> &ErasureLayer {
        self.erasure()
    }
}
