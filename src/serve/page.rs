//! The live page: one HTML document with its script and style, served from the binary.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page (placeholder until the live page lands).
const INDEX_HTML: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>bn-lab</title></head><body><h1>bn-lab</h1><p>The API is /api/run?args=...</p></body></html>";

/// `GET /`.
pub async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}
