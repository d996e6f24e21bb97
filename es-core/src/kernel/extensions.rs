//! What is started on top of a kernel and stopped with it, kept in slots the kernel knows only
//! by type: the kernel does not name what it holds (process managers keep their runners here,
//! written in `crate::process`, which depends on the kernel and not the other way round).

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;

/// The boxed future of [`Extension::shutdown`].
pub(crate) type ShutdownFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something started on top of a kernel, stopped by [`Kernel::shutdown`](super::Kernel::shutdown)
/// before the kernel stops its actors (so that what it still sends commits).
pub(crate) trait Extension: Send + Sync + 'static {
    /// Stops what the extension runs and waits for it.
    fn shutdown(&self) -> ShutdownFuture<'_>;
}

/// One extension, seen as what it is (to hand it out) and as an [`Extension`] (to stop it).
struct Slot {
    id: TypeId,
    any: Arc<dyn Any + Send + Sync>,
    extension: Arc<dyn Extension>,
}

/// The extensions of a kernel, at most one per type, in the order they were added.
#[derive(Default)]
pub(crate) struct Extensions {
    slots: Mutex<Vec<Slot>>,
}

impl Extensions {
    /// The extension of type `T`, made with `make` the first time it is asked for.
    pub(crate) fn get_or_insert_with<T: Extension>(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut slots = self.slots.lock();
        let id = TypeId::of::<T>();
        if let Some(found) = slots
            .iter()
            .find(|slot| slot.id == id)
            .and_then(|slot| slot.any.clone().downcast::<T>().ok())
        {
            return found;
        }
        let made = Arc::new(make());
        slots.push(Slot {
            id,
            any: made.clone(),
            extension: made.clone(),
        });
        made
    }

    /// Stops every extension, the most recently added first, and waits for each.
    pub(crate) async fn shutdown(&self) {
        let extensions: Vec<Arc<dyn Extension>> = self
            .slots
            .lock()
            .iter()
            .rev()
            .map(|slot| slot.extension.clone())
            .collect();
        for extension in extensions {
            extension.shutdown().await;
        }
    }
}
