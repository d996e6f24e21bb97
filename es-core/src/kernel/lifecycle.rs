//! Deleting an aggregate's stream through the kernel: [`Kernel::delete_stream`] and
//! [`Kernel::delete_stream_hard`] (see [`crate::store::lifecycle`] for what each does).

use crate::aggregate::Aggregate;
use crate::store::StreamId;
use crate::store::lifecycle::{Deletion, delete_stream};

use super::{DispatchError, Kernel};

impl Kernel {
    /// Soft-deletes aggregate `id` of type `A`: appends a tombstone event to its stream. From
    /// then on every command to it is refused with [`DispatchError::StreamDeleted`], also after
    /// a restart and on every node sharing the store; its events stay readable by projections
    /// (which do not see the tombstone unless they accept every event type). Deleting a
    /// deleted stream again changes nothing. A stream without events is refused with
    /// [`DispatchError::Store`] (`InvalidInput`).
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # pub struct Add;
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    /// # pub struct Added;
    /// # #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    /// # pub struct Tally { n: u64 }
    /// # #[aggregate(name = "tally")]
    /// # impl Tally {
    /// #     #[command]
    /// #     fn add(&self, _: Add) -> Result<Added, std::convert::Infallible> { Ok(Added) }
    /// #     #[apply]
    /// #     fn added(&mut self, _: &Added) { self.n += 1; }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let kernel = Kernel::builder().store(store).register::<Tally>().build()?;
    /// kernel.dispatch::<Tally>("t-1", Add).await?;
    /// kernel.delete_stream::<Tally>("t-1").await?;
    /// let refused = kernel.dispatch::<Tally>("t-1", Add).await;
    /// assert!(matches!(refused, Err(DispatchError::StreamDeleted { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_stream<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Deletion, DispatchError<A::Error>> {
        self.delete::<A>(id, false).await
    }

    /// Hard-deletes aggregate `id` of type `A`: a soft delete ([`Kernel::delete_stream`]),
    /// then every event before the tombstone and every snapshot of the stream are removed from
    /// the store. The positions of other events do not change. The tombstone stays, so the id
    /// keeps refusing commands ([`DispatchError::StreamDeleted`]): a hard-deleted id is never
    /// reused as a new stream. An interrupted hard delete leaves the stream soft-deleted;
    /// calling this again completes it.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::store::EventStore;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Clone, Serialize, Deserialize)]
    /// # pub struct Add;
    /// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
    /// # pub struct Added;
    /// # #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    /// # pub struct Tally { n: u64 }
    /// # #[aggregate(name = "tally")]
    /// # impl Tally {
    /// #     #[command]
    /// #     fn add(&self, _: Add) -> Result<Added, std::convert::Infallible> { Ok(Added) }
    /// #     #[apply]
    /// #     fn added(&mut self, _: &Added) { self.n += 1; }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryStore::new();
    /// let kernel = Kernel::builder().store(store.clone()).register::<Tally>().build()?;
    /// kernel.dispatch::<Tally>("t-1", Add).await?;
    /// kernel.dispatch::<Tally>("t-2", Add).await?;
    /// let done = kernel.delete_stream_hard::<Tally>("t-1").await?;
    /// assert_eq!(done.removed, 1);
    /// // t-2's event keeps its position; only the tombstone of t-1 follows it.
    /// let all = store.read_all(1, 10).await?;
    /// assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [2, 3]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_stream_hard<A: Aggregate>(
        &self,
        id: &str,
    ) -> Result<Deletion, DispatchError<A::Error>> {
        self.delete::<A>(id, true).await
    }

    async fn delete<A: Aggregate>(
        &self,
        id: &str,
        hard: bool,
    ) -> Result<Deletion, DispatchError<A::Error>> {
        self.registry::<A>()?;
        let stream = StreamId::new(A::TYPE, id);
        stream.validate()?;
        let ctx = self.context();
        Ok(delete_stream(
            ctx.event_store.as_ref(),
            ctx.snapshot_store.as_deref(),
            &stream,
            hard,
        )
        .await?)
    }
}
