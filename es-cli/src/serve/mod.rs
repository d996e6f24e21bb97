//! `es serve`: a web console for a store, read-only unless `--allow-writes` (which lets it
//! retry and skip dead letters), and the JSON API under `/api/` that its pages use (scripts can
//! use it too).
//!
//! ```no_run
//! # async fn demo() -> Result<(), es_cli::CliError> {
//! use es_stores::{OpenOptions, OpenedStore};
//!
//! let store = OpenedStore::open("lmdb:./data", &OpenOptions::default())
//!     .await
//!     .map_err(|e| es_cli::CliError::store("opening the store", &e))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080")
//!     .await
//!     .map_err(|e| es_cli::CliError::new(e.to_string()))?;
//! // Serves until the future given as the shutdown signal completes.
//! es_cli::serve::serve(store, listener, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The pages (HTML, one script and one style sheet compiled into the binary):
//! `/` (the streams: counts by aggregate type, search, paging), `/streams/{type}/{id}` (a
//! stream's events with their whole envelope), `/log` (the log, newest first, with filters and
//! live follow; `/log?follow` follows at once), `/correlation/{id}` (every event of a
//! correlation id), `/projections` (checkpoints, lag in events and seconds, a live chart, the
//! dead letters of projections under `ErrorPolicy::Park`) and
//! `/health` (`verify` on demand; `/health?run` runs it at once).
//!
//! The JSON API (every route answers `GET` only, except the two dead-letter routes that exist
//! only with [`ServeOptions::allow_writes`]):
//!
//! | route | answer |
//! | --- | --- |
//! | `/api/summary` | the store's URL, backend, head position and newest event's timestamp |
//! | `/api/stream-types` | `[{"type", "streams"}]`: streams per aggregate type |
//! | `/api/streams?type=&q=&after_type=&after_id=&limit=` | `{"streams": [{"type", "id", "version"}], "next"}`; `q` matches `type/id` case-insensitively; `next` is the cursor of the following page (`{"type", "id"}`) or null |
//! | `/api/streams/{type}/{id}?from=&limit=` | `{"stream", "version", "events", "next_from"}` |
//! | `/api/log?before=&limit=&type=&aggregate=` | `{"head", "events", "next_before"}`, newest first |
//! | `/api/correlation/{id}?limit=` | `{"correlation_id", "events", "truncated"}`, in log order |
//! | `/api/projections` | `{"head", "projections": [{"name", "kind", "position", "lag", "lag_seconds", "state_bytes"}]}` |
//! | `/api/verify` | the report of `es verify --json` |
//! | `/api/projections/{name}/dead-letters` | `{"projection", "writable", "dead_letters": [{"key", "position", "event_type", "error", "skipped", "retry_requested", ...}]}` |
//! | `POST /api/projections/{name}/retry` `{"key"}` | marks the key's parked events for a retry (`es dlq retry`): `{"projection", "key", "retry_requested"}`; with `--allow-writes` only |
//! | `POST /api/projections/{name}/skip` `{"key", "position", "reason"}` | skips one, keeping the reason (`es dlq skip`); with `--allow-writes` only |
//! | `/api/follow?from=&type=&aggregate=` | server-sent events: one `event` per new event (its `id` is its position, so a reconnecting `EventSource` resumes after it) |
//!
//! Events are JSON objects in the export format ([`format`](crate::format)): the whole
//! envelope and the payload.
//!
//! Page sizes (`limit`): 50 streams, 100 events of a stream, 50 events of the log and 1,000
//! events of a correlation id by default; at most 1,000 (4,096 for a correlation id). Errors
//! answer `{"error": message}` with 400 (a bad request), 404 (no such stream or route) or 500
//! (the store failed).
//!
//! Costs: the stream list and the counts read the stream heads, not the events. The log,
//! newest first, reads windows of positions backwards, so a filter that matches rarely reads
//! more of the log. `/api/correlation` reads the whole log (every backend: the store traits
//! have no index by correlation id), about as long as `es export` takes.

mod api;
mod dead_letters;
mod error;
mod follow;
mod pages;
mod read;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use es_stores::OpenedStore;
use tower_http::set_header::SetResponseHeaderLayer;

use self::state::App;
use crate::context::Ctx;
use crate::error::{CliError, CliResult, EXIT_OK, IoContext};

/// The address `es serve` listens on without `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What the console may do besides reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Adds the routes that retry and skip dead letters (`POST /api/projections/{name}/retry`
    /// and `/skip`); without it the console has no route that writes (`--allow-writes`).
    pub allow_writes: bool,
}

/// Serves the console and its API for `store` on `listener` until `shutdown` completes; then
/// the live streams (`/api/follow`) end and the requests in flight are answered. Read-only:
/// [`serve_with`] takes [`ServeOptions`].
///
/// When the listener is on a loopback address, requests must name a loopback host
/// (`127.0.0.1`, `[::1]` or `localhost`) in their `Host` header, so that a page of another
/// site cannot read the store through DNS rebinding.
///
/// # Errors
///
/// When the listener's address cannot be read or serving fails.
pub async fn serve(
    store: OpenedStore,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    serve_with(store, listener, shutdown, ServeOptions::default()).await
}

/// [`serve`] with options: `allow_writes` adds the dead-letter retry and skip routes.
///
/// # Errors
///
/// When the listener's address cannot be read or serving fails.
pub async fn serve_with(
    store: OpenedStore,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> Result<(), CliError> {
    let addr = listener
        .local_addr()
        .io(|| "reading the listening address".to_owned())?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app = App {
        store,
        verifying: Arc::new(tokio::sync::Mutex::new(())),
        loopback_port: addr.ip().is_loopback().then_some(addr.port()),
        stopping,
        allow_writes: options.allow_writes,
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
        .io(|| format!("serving on {addr}"))
}

/// The pages and the API, with the headers every answer carries.
fn router(app: App) -> Router {
    Router::new()
        .merge(pages::routes())
        .nest("/api", api::routes(app.allow_writes))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            check_host,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(app)
}

/// Refuses a request to a loopback listener whose `Host` is not a loopback name.
async fn check_host(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Some(port) = app.loopback_port {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let allowed = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|name| host == *name || host == format!("{name}:{port}"));
        if !allowed {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this console answers only to 127.0.0.1, [::1] or localhost\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The address to listen on: `--listen` when given, else [`DEFAULT_LISTEN`] (loopback). A
/// non-loopback address can only come from `--listen`, and gets a warning on stderr.
fn listen_address(listen: Option<&str>) -> CliResult<SocketAddr> {
    let text = listen.unwrap_or(DEFAULT_LISTEN);
    let addr: SocketAddr = text.parse().map_err(|e| {
        CliError::new(format!(
            "bad --listen address {text:?} ({e}): give an IP address and a port, e.g. \
             127.0.0.1:8080 or 0.0.0.0:8080"
        ))
    })?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: listening on {addr}, not a loopback address: whoever reaches it can read \
             the whole store"
        );
    }
    Ok(addr)
}

/// `es serve [--listen ADDR] [--allow-writes]`: prints the console's address, then serves
/// until Ctrl-C.
pub(crate) async fn run(
    store: &OpenedStore,
    ctx: &mut Ctx,
    listen: Option<&str>,
    allow_writes: bool,
) -> CliResult<u8> {
    let addr = listen_address(listen)?;
    let listener = tokio::net::TcpListener::bind(addr).await.io(|| {
        format!("cannot listen on {addr} (is another program using it? try --listen 127.0.0.1:0)")
    })?;
    let bound = listener
        .local_addr()
        .io(|| "reading the listening address".to_owned())?;
    ctx.out.line(format!(
        "es serve: http://{bound}/ ({}, {}); Ctrl-C stops",
        store.url(),
        if allow_writes {
            "writes allowed: dead-letter retry and skip"
        } else {
            "read-only"
        }
    ))?;
    ctx.out.flush()?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_with(
        store.clone(),
        listener,
        shutdown,
        ServeOptions { allow_writes },
    )
    .await?;
    Ok(EXIT_OK)
}
