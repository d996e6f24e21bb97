//! [`AnyRunner`]: a projection runner seen without its projection type, as
//! [`super::Projections`] keeps it by name.

use std::any::Any;
use std::sync::Arc;

use crate::follow::Progress;

use super::dead_letter::DeadLetter;
use super::error::ProjectionError;
use super::group::Group;
use super::metrics::ProjectionMetricsRef;
use super::options::ProjectionStatus;
use super::read_model::Projection;

/// A runner seen without its projection type, as [`super::Projections`] keeps it.
pub(super) trait AnyRunner: Send + Sync + 'static {
    /// Its status.
    fn status(&self) -> ProjectionStatus;
    /// Asks it to stop and waits for it.
    fn stop(&self) -> StopFuture<'_>;
    /// Its shared part, to downcast to `Group<P>`.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Its dead letters.
    fn dead_letters(&self) -> Vec<DeadLetter>;
    /// Each partition's metrics and progress (one, unpartitioned), for the lag monitor.
    fn lag_sources(&self) -> Vec<(ProjectionMetricsRef, Arc<Progress>)>;
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

impl<P: Projection> AnyRunner for Group<P> {
    fn status(&self) -> ProjectionStatus {
        Group::status(self)
    }

    fn stop(&self) -> StopFuture<'_> {
        Box::pin(Group::stop(self))
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn dead_letters(&self) -> Vec<DeadLetter> {
        Group::dead_letters(self)
    }

    fn lag_sources(&self) -> Vec<(ProjectionMetricsRef, Arc<Progress>)> {
        self.parts
            .iter()
            .map(|p| (p.metrics.clone(), p.progress.clone()))
            .collect()
    }

    fn retry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize, ProjectionError>> {
        Box::pin(Group::retry(self, key))
    }

    fn skip<'a>(
        &'a self,
        key: &'a str,
        position: u64,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), ProjectionError>> {
        Box::pin(Group::skip(self, key, position, reason))
    }
}
