//! The console's pages: one HTML shell for every page, whose script (compiled into the binary,
//! like its style sheet) renders the page its path names from the JSON API.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::state::App;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The pages' routes and their assets.
pub(super) fn routes() -> Router<App> {
    let page = get(|| async { Html(INDEX_HTML) });
    Router::new()
        .route("/", page.clone())
        .route("/streams", page.clone())
        .route("/streams/{aggregate_type}/{id}", page.clone())
        .route("/log", page.clone())
        .route("/correlation/{id}", page.clone())
        .route("/projections", page.clone())
        .route("/health", page)
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/assets/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n").into_response() })
}
