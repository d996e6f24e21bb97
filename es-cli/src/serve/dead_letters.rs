//! The dead letters of a projection in the console: listed always, retried and skipped only
//! with `--allow-writes` (the routes do not exist without it), through the same checkpoint edits
//! as `es dlq` (refused while a runner of the projection runs elsewhere).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use es_core::projection::DeadLetter;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::state::App;
use crate::dlq;

/// The routes under `/api/projections/{name}/`; `writes` adds `retry` and `skip`.
pub(super) fn routes(writes: bool) -> Router<App> {
    let router = Router::new().route("/projections/{name}/dead-letters", get(list));
    if writes {
        router
            .route("/projections/{name}/retry", post(retry))
            .route("/projections/{name}/skip", post(skip))
    } else {
        router
    }
}

/// A projection's dead letters.
#[derive(Serialize)]
struct Letters {
    projection: String,
    /// Whether this console may retry and skip them.
    writable: bool,
    dead_letters: Vec<DeadLetter>,
}

async fn list(State(app): State<App>, Path(name): Path<String>) -> ApiResult<Letters> {
    let dead_letters = dlq::letters(&app.store, &name)
        .await
        .map_err(|e| ApiError::not_found(e.to_string()))?;
    Ok(Json(Letters {
        projection: name,
        writable: app.allow_writes,
        dead_letters,
    }))
}

/// `POST .../retry` with `{"key": "type/id"}`.
#[derive(Deserialize)]
struct RetryBody {
    key: String,
}

#[derive(Serialize)]
struct Retried {
    projection: String,
    key: String,
    retry_requested: usize,
}

async fn retry(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<RetryBody>,
) -> ApiResult<Retried> {
    let marked = dlq::request_retry(&app.store, &name, &body.key)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(Retried {
        projection: name,
        key: body.key,
        retry_requested: marked,
    }))
}

/// `POST .../skip` with `{"key": "type/id", "position": 7, "reason": "..."}`.
#[derive(Deserialize, Serialize)]
struct SkipBody {
    key: String,
    position: u64,
    reason: String,
}

async fn skip(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<SkipBody>,
) -> ApiResult<SkipBody> {
    if body.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "a skip needs a reason: it is kept in the dead letter's record",
        ));
    }
    dlq::skip_letter(&app.store, &name, &body.key, body.position, &body.reason)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(body))
}
