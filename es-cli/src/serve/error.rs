//! The API's error answers.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::CliError;

/// An error answer: a status and `{"error": message}`.
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// A 400 answer: the request is wrong.
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<CliError> for ApiError {
    fn from(e: CliError) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// What an API handler returns.
pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;
