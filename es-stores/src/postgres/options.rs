//! Building a store: [`PostgresStoreBuilder`]'s options, connecting, checking or migrating the
//! schema, and starting the lane and the background tasks.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use es_core::store::StoreError;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{Notify, mpsc, watch};
use tracing::debug;

use super::bulk::Bulk;
use super::error::{self, Op};
use super::sql::{self, Queries};
use super::store::Inner;
use super::writer::{self, Lane, MAX_EVENTS_PER_TRANSACTION};
use super::{PostgresStore, head, migrate, read};
use crate::metrics::StoreMetrics;
use crate::url::redact;

/// Configures a [`PostgresStore`]; made by [`PostgresStore::builder`].
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    pool: PgPool,
    schema: String,
    lanes: usize,
    max_batch: usize,
    migrate: bool,
    listen: bool,
    poll_interval: Duration,
    visibility_wait: Duration,
}

impl PostgresStoreBuilder {
    /// The schema holding the store's tables (default [`PostgresStore::DEFAULT_SCHEMA`], `es`): a
    /// lower-case SQL identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes). Stores on different
    /// schemas of one database are independent.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How many append statements may be in flight at once, each on a connection of the pool
    /// (default 2; 1 writes one statement at a time, in the order the appends were sent).
    /// Appends queue on one lane, which writes what queued while its previous statement ran;
    /// another statement starts beside one in flight only when at least 64 appends wait, so
    /// under a moderate load statements stay large and the server's fixed cost per statement
    /// is shared by more appends. A stream's appends never run in two statements at once.
    #[must_use]
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes.max(1);
        self
    }

    /// The most appends in one statement (default 512).
    #[must_use]
    pub fn max_batch(mut self, appends: usize) -> Self {
        self.max_batch = appends.clamp(1, MAX_EVENTS_PER_TRANSACTION);
        self
    }

    /// Whether [`build`](Self::build) creates and migrates the schema (default `true`). When
    /// `false`, `build` fails with [`StoreError::Incompatible`] unless the schema is current.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether to LISTEN for other nodes' commits (default `true`). Without it,
    /// [`EventStore::subscribe`](es_core::store::EventStore::subscribe) sees other nodes' events only at the next poll.
    #[must_use]
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// How often the subscription head is re-read when nothing wakes it (default 1 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long an append waits, after its commit, for its events to become readable by
    /// [`EventStore::read_all`](es_core::store::EventStore::read_all) (default 1 s; zero: do not wait).
    ///
    /// Events become readable once every older transaction has finished (see the gap problem on
    /// [`PostgresStore`]). Other appends finish within milliseconds, so an append normally returns
    /// with its events already readable and [`EventStore::subscribe`](es_core::store::EventStore::subscribe) already past them
    /// (read-your-writes). A long-running transaction elsewhere on the server holds readers back;
    /// then an append returns after this wait anyway: its events are committed, and readers see
    /// them when that transaction ends.
    #[must_use]
    pub fn visibility_wait(mut self, wait: Duration) -> Self {
        self.visibility_wait = wait;
        self
    }

    /// Migrates the schema (unless disabled), starts the background tasks and returns the store.
    /// Must be called within a tokio runtime.
    pub async fn build(self) -> Result<PostgresStore, StoreError> {
        // Taken before the first await, with the recorder of the caller's context.
        let metrics = StoreMetrics::new("postgres");
        if !migrate::valid_schema_name(&self.schema) {
            return Err(StoreError::InvalidInput(format!(
                "schema name {} is not a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most \
                 63 bytes)",
                es_core::store::quote_prefix(&self.schema)
            )));
        }
        let schema = self.schema;
        let pool = self.pool;
        if self.migrate {
            migrate::migrate(&pool, &schema).await?;
        } else {
            check_version(&pool, &schema).await?;
        }
        let sql = Arc::new(Queries::new(&schema));
        let head = Arc::new(watch::Sender::new(read::head(&pool, &sql).await?));
        let wake = Arc::new(Notify::new());
        let notify_others = Arc::new(AtomicBool::new(false));
        let committed = writer::Committed {
            wake: wake.clone(),
            notify_others: notify_others.clone(),
            head: head.clone(),
        };
        // One lane, which splits a large batch over `self.lanes` connections (see `writer`).
        let (tx, rx) = mpsc::channel(4096);
        let lane = Lane {
            pool: pool.clone(),
            sql: sql.clone(),
            max_appends: self.max_batch,
            max_events: MAX_EVENTS_PER_TRANSACTION,
            committed: committed.clone(),
            group_size: metrics.group_size.clone(),
            parallel: self.lanes,
        };
        tokio::spawn(lane.run(rx));
        // `append_many` writes its batches through a lane of its own, one batch at a time.
        let bulk = Lane {
            pool: pool.clone(),
            sql: sql.clone(),
            max_appends: MAX_EVENTS_PER_TRANSACTION,
            max_events: MAX_EVENTS_PER_TRANSACTION,
            committed: committed.clone(),
            group_size: metrics.group_size.clone(),
            parallel: 1,
        };
        let channel = channel_name(&schema);
        let node = head::node_id();
        let mut tasks = Vec::new();
        let refresher = head::Refresher {
            pool: pool.clone(),
            sql: sql.clone(),
            channel: channel.clone(),
            node: node.clone(),
            wake: wake.clone(),
            notify_others,
            head: head.clone(),
            idle_poll: self.poll_interval,
        };
        tasks.push(tokio::spawn(refresher.run()));
        if self.listen {
            tasks.push(tokio::spawn(head::listen(
                pool.clone(),
                channel,
                node,
                wake,
            )));
        }
        let readers = super::readers::start(&pool, &schema, READERS);
        debug!(schema, lanes = self.lanes, "postgres store ready");
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                schema,
                sql,
                lane: tx,
                readers,
                bulk: tokio::sync::Mutex::new(Bulk::new(bulk)),
                head,
                visibility_wait: self.visibility_wait,
                tasks,
                metrics,
            }),
        })
    }
}

/// Reader tasks (see `readers`): each holds a connection while reads keep coming.
const READERS: usize = 4;

/// The NOTIFY channel of a schema (channel names are at most 63 bytes; a shared truncated name
/// only causes extra wake-ups).
fn channel_name(schema: &str) -> String {
    let mut channel = format!("es.{schema}");
    channel.truncate(63);
    channel
}

/// Fails unless `schema` holds the tables of this store's version.
async fn check_version(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let version: i32 = sqlx::query_scalar(&sql::fill(sql::SCHEMA_VERSION, schema))
        .fetch_one(pool)
        .await
        .map_err(|e| match error::sqlstate(&e).as_deref() {
            Some("42P01" | "3F000") => StoreError::Incompatible(format!(
                "schema {schema} has no event store tables; build the store with migrate(true)"
            )),
            _ => error::map(e, Op::Read, "reading the schema version"),
        })?;
    if version == migrate::LATEST {
        Ok(())
    } else {
        Err(StoreError::Incompatible(format!(
            "schema {schema} is at version {version}, this store needs {}",
            migrate::LATEST
        )))
    }
}

impl PostgresStore {
    /// The schema used when none is configured.
    pub const DEFAULT_SCHEMA: &'static str = "es";

    /// A builder for a store on `pool`: set the schema and tuning, then `.build().await`.
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            lanes: 2,
            max_batch: 512,
            migrate: true,
            listen: true,
            poll_interval: Duration::from_secs(1),
            visibility_wait: Duration::from_secs(1),
        }
    }

    /// A store on `pool` in the default schema, migrated and listening.
    pub async fn new(pool: PgPool) -> Result<Self, StoreError> {
        Self::builder(pool).build().await
    }

    /// Connects a pool of up to 16 connections to `url` (e.g.
    /// `postgresql://user@host:5432/db`) and builds a store on it in the default schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| error::map(e, Op::Acquire, "connecting to PostgreSQL"))?;
        Self::new(pool).await
    }

    /// Opens the store a store URL names (see [`open`](crate::open)): a pool of up to 16
    /// connections to `url` (without JIT, which the large statements of a bulk append would
    /// pay for), in `schema` (default [`DEFAULT_SCHEMA`](Self::DEFAULT_SCHEMA)). Without
    /// `create`, a schema without the store's tables is refused; `ordered` writes through a
    /// single lane, in the order appends are sent.
    pub(crate) async fn open_url(
        url: &str,
        schema: Option<&str>,
        create: bool,
        ordered: bool,
    ) -> Result<Self, StoreError> {
        let connect: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| {
            StoreError::InvalidInput(format!("bad PostgreSQL URL {}: {e}", redact(url)))
        })?;
        // The large statements of a bulk append cross the planner's JIT threshold, and compiling
        // them costs more than it saves.
        let connect = connect.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {e}; check that the server runs and the URL is right",
                    redact(url)
                ))
            })?;
        let schema = schema.unwrap_or(Self::DEFAULT_SCHEMA);
        if !create {
            let table = format!("\"{}\".events", schema.replace('"', ""));
            let found: Option<String> = sqlx::query_scalar(sql::FIND_EVENTS_TABLE)
                .bind(&table)
                .fetch_one(&pool)
                .await
                .map_err(|e| {
                    StoreError::Unavailable(format!("looking for the store's tables: {e}"))
                })?;
            if found.is_none() {
                pool.close().await;
                return Err(StoreError::InvalidInput(format!(
                    "there is no event store in schema `{schema}` of {}: check the `schema=` parameter",
                    redact(url)
                )));
            }
        }
        let mut builder = Self::builder(pool).schema(schema);
        if ordered {
            builder = builder.lanes(1).max_batch(4096);
        }
        builder.build().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compiled, never run: the build future can be spawned.
    #[allow(dead_code)]
    fn futures_are_send(pool: PgPool) {
        let build = PostgresStore::builder(pool).build();
        assert_send(&build);
    }

    #[test]
    fn channel_names_fit_postgres() {
        assert_eq!(channel_name("es"), "es.es");
        assert_eq!(channel_name(&"a".repeat(63)).len(), 63);
    }
}
