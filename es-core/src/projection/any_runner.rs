//! [`AnyRunner`]: a projection runner seen without its projection type, as
//! [`super::Projections`] keeps it by name.

use std::any::Any;
use std::sync::Arc;

use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::options::ProjectionStatus;
use super::parking;
use super::read_model::Projection;
use super::shared::{Shared, status_of};

/// A runner seen without its projection type, as [`super::Projections`] keeps it.
pub(super) trait AnyRunner: Send + Sync + 'static {
    /// Its status.
    fn status(&self) -> ProjectionStatus;
    /// Asks it to stop and waits for it.
    fn stop(&self) -> StopFuture<'_>;
    /// Its shared part, to downcast to `Shared<P>`.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Its dead letters.
    fn dead_letters(&self) -> Vec<DeadLetter>;
    /// Re-runs the parked events of `key` in order.
    fn retry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize, ProjectionError>>;
    /// Drops the parked event of `key` at `position`, recording `reason`.
    fn skip<'a>(
        &'a self,
        key: &'a str,
        position: u64,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ProjectionError>>;
}

/// A boxed future of an [`AnyRunner`] method.
pub(super) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The boxed future of [`AnyRunner::stop`].
pub(super) type StopFuture<'a> = BoxFuture<'a, ()>;

impl<P: Projection> AnyRunner for Shared<P> {
    fn status(&self) -> ProjectionStatus {
        status_of(self)
    }

    fn stop(&self) -> StopFuture<'_> {
        Box::pin(self.progress.stop())
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn dead_letters(&self) -> Vec<DeadLetter> {
        self.parked.lock().list()
    }

    fn retry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize, ProjectionError>> {
        Box::pin(parking::retry(self, key))
    }

    fn skip<'a>(
        &'a self,
        key: &'a str,
        position: u64,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(parking::skip(self, key, position, reason))
    }
}
