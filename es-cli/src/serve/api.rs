//! The JSON API under `/api/` (see the module docs of [`serve`](super) for the routes).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use es_core::store::{EventStore, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::{ApiError, ApiResult};
use super::read::{self, StreamQuery};
use super::state::App;
use crate::error::StoreContext;
use crate::format::format_timestamp;
use crate::inspect::{LogFilter, PAGE};

/// The most events one page of the API returns.
const MAX_LIMIT: usize = 1000;

/// The API's routes.
pub(super) fn routes(allow_writes: bool) -> Router<App> {
    Router::new()
        .merge(super::dead_letters::routes(allow_writes))
        .route("/summary", get(summary))
        .route("/stream-types", get(stream_types))
        .route("/streams", get(streams))
        .route("/streams/{aggregate_type}/{id}", get(stream))
        .route("/log", get(log))
        .route("/correlation/{id}", get(correlation))
        .route("/projections", get(projections))
        .route("/verify", get(verify))
        .route("/follow", get(super::follow::follow))
        .fallback(|| async { ApiError::not_found("no such API route") })
}

/// A page size from a query: `default` when absent, at most [`MAX_LIMIT`].
fn page_size(limit: Option<usize>, default: usize) -> usize {
    limit.unwrap_or(default).clamp(1, MAX_LIMIT)
}

/// A stream id as JSON.
#[derive(Serialize, Deserialize)]
struct StreamRef {
    #[serde(rename = "type")]
    aggregate_type: String,
    id: String,
}

impl From<&StreamId> for StreamRef {
    fn from(s: &StreamId) -> Self {
        Self {
            aggregate_type: s.aggregate_type.clone(),
            id: s.aggregate_id.clone(),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    store: String,
    backend: &'static str,
    /// Whether dead letters may be retried and skipped here (`--allow-writes`).
    allow_writes: bool,
    head_position: u64,
    newest_timestamp: Option<String>,
}

async fn summary(State(app): State<App>) -> ApiResult<Summary> {
    let es = app.store.store();
    let head = es.head_position().await.doing("reading the head")?;
    let newest = if head == 0 {
        None
    } else {
        es.read_all(head, 1)
            .await
            .doing("reading the log")?
            .first()
            .map(|e| format_timestamp(&e.timestamp))
    };
    Ok(Json(Summary {
        store: app.store.url().to_string(),
        backend: app.store.url().backend(),
        allow_writes: app.allow_writes,
        head_position: head,
        newest_timestamp: newest,
    }))
}

#[derive(Serialize)]
struct TypeCount {
    #[serde(rename = "type")]
    aggregate_type: String,
    streams: u64,
}

async fn stream_types(State(app): State<App>) -> ApiResult<Vec<TypeCount>> {
    let counts = read::stream_types(&app.store).await?;
    Ok(Json(
        counts
            .into_iter()
            .map(|(aggregate_type, streams)| TypeCount {
                aggregate_type,
                streams,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
struct StreamsParams {
    #[serde(rename = "type")]
    aggregate_type: Option<String>,
    q: Option<String>,
    after_type: Option<String>,
    after_id: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct StreamRow {
    #[serde(rename = "type")]
    aggregate_type: String,
    id: String,
    version: u64,
}

#[derive(Serialize)]
struct StreamsPage {
    streams: Vec<StreamRow>,
    next: Option<StreamRef>,
}

/// Treats an empty query parameter as absent.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

async fn streams(
    State(app): State<App>,
    Query(params): Query<StreamsParams>,
) -> ApiResult<StreamsPage> {
    let after = match (given(params.after_type), params.after_id) {
        (Some(t), Some(id)) => Some(StreamId::new(t, id)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "after_type and after_id go together (the `next` of the previous page)",
            ));
        }
    };
    let query = StreamQuery {
        aggregate_type: given(params.aggregate_type),
        search: given(params.q),
        after,
        limit: page_size(params.limit, 50),
    };
    let (found, next) = read::streams(&app.store, &query).await?;
    Ok(Json(StreamsPage {
        streams: found
            .into_iter()
            .map(|(s, version)| StreamRow {
                aggregate_type: s.aggregate_type,
                id: s.aggregate_id,
                version,
            })
            .collect(),
        next: next.as_ref().map(StreamRef::from),
    }))
}

#[derive(Deserialize)]
struct StreamParams {
    from: Option<u64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct StreamPage {
    stream: StreamRef,
    version: u64,
    events: Vec<Box<RawValue>>,
    next_from: Option<u64>,
}

async fn stream(
    State(app): State<App>,
    Path((aggregate_type, id)): Path<(String, String)>,
    Query(params): Query<StreamParams>,
) -> ApiResult<StreamPage> {
    let stream = StreamId::new(aggregate_type, id);
    stream
        .validate()
        .map_err(|e| ApiError::bad_request(format!("bad stream: {e}")))?;
    let es = app.store.store();
    let version = es
        .stream_version(&stream)
        .await
        .doing(&format!("reading the version of {stream}"))?;
    if version == 0 {
        return Err(ApiError::not_found(format!(
            "stream {stream} has no events"
        )));
    }
    let limit = page_size(params.limit, 100);
    let from = params.from.unwrap_or(1).max(1);
    let events = es
        .read_stream(&stream, from, limit)
        .await
        .doing(&format!("reading stream {stream}"))?;
    let next_from = events
        .last()
        .filter(|last| last.sequence < version)
        .map(|last| last.sequence + 1);
    Ok(Json(StreamPage {
        stream: StreamRef::from(&stream),
        version,
        events: read::events_json(&events)?,
        next_from,
    }))
}

#[derive(Deserialize)]
struct LogParams {
    before: Option<u64>,
    limit: Option<usize>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    aggregate: Option<String>,
}

#[derive(Serialize)]
struct LogPage {
    head: u64,
    events: Vec<Box<RawValue>>,
    next_before: Option<u64>,
}

async fn log(State(app): State<App>, Query(params): Query<LogParams>) -> ApiResult<LogPage> {
    let es = app.store.store();
    let head = es.head_position().await.doing("reading the head")?;
    let filter = LogFilter {
        from: 1,
        limit: 0,
        event_type: given(params.event_type),
        aggregate: given(params.aggregate),
    };
    let before = params.before.unwrap_or(head + 1).min(head + 1);
    let (events, next_before) =
        read::newest_first(&*es, before, page_size(params.limit, 50), &filter).await?;
    Ok(Json(LogPage {
        head,
        events: read::events_json(&events)?,
        next_before,
    }))
}

#[derive(Deserialize)]
struct CorrelationParams {
    limit: Option<usize>,
}

#[derive(Serialize)]
struct CorrelationPage {
    correlation_id: String,
    events: Vec<Box<RawValue>>,
    truncated: bool,
}

async fn correlation(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(params): Query<CorrelationParams>,
) -> ApiResult<CorrelationPage> {
    let limit = params.limit.unwrap_or(MAX_LIMIT).clamp(1, PAGE);
    let (events, truncated) = read::correlated(&*app.store.store(), &id, limit).await?;
    Ok(Json(CorrelationPage {
        correlation_id: id,
        events: read::events_json(&events)?,
        truncated,
    }))
}

#[derive(Serialize)]
struct ProjectionsPage {
    head: u64,
    projections: Vec<crate::checkpoints::ProjectionRow>,
}

async fn projections(State(app): State<App>) -> ApiResult<ProjectionsPage> {
    let (projections, head) = crate::checkpoints::projection_rows(&app.store).await?;
    Ok(Json(ProjectionsPage { head, projections }))
}

async fn verify(State(app): State<App>) -> ApiResult<crate::verify::Report> {
    let _one_at_a_time = app.verifying.lock().await;
    Ok(Json(crate::verify::check(&app.store, false).await?))
}
