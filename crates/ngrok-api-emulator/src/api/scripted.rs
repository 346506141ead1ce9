//! The spoiled answers of [`ScriptedAnswer`](crate::ScriptedAnswer)s: what a client meets
//! when something between it and ngrok misbehaves (a cut body, a load balancer's redirect, a
//! proxy's HTML error page). Only their shapes live here; when to use them is the pipeline's
//! business.

use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A 2xx answer with its body cut in half (an empty body becomes `{`): JSON that does not
/// parse, with the status and headers of the real answer.
pub(super) async fn malformed(answer: Response) -> Response {
    if !answer.status().is_success() {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = if bytes.is_empty() {
        Bytes::from_static(b"{")
    } else {
        bytes.slice(..bytes.len() / 2)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// What a load balancer answers when it sends a client elsewhere.
pub(super) fn redirect(path: &str) -> Response {
    let location = format!("https://moved.invalid{path}");
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// What a proxy in front of ngrok answers: HTML, not ngrok's error object.
pub(super) fn error_page(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let html =
        format!("<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>");
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}
