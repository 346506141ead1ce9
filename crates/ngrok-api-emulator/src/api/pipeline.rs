//! The middleware every API request goes through, around its handler: it records the
//! request (and later its status), refuses it in ngrok's order (latency fault, API key,
//! `Ngrok-Version`, rate limit, injected 5xx), applies a scripted answer, and stamps an
//! `ngrok-operation-id` on every answer. Kept apart from the handlers so that the order of
//! the checks, which tests rely on, reads in one place.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::Value;

use super::scripted::{error_page, malformed, redirect};
use super::{App, Caller, MAX_BODY_BYTES};
use crate::failure::{Failure, OPERATION_ID_HEADER, codes};
use crate::ids::new_operation_id;
use crate::state::{Account, RecordedRequest, Spoiled};

/// The path with ids replaced, for counting: `/event_destinations/{id}`.
fn route_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [collection, _id] if ["event_destinations", "event_subscriptions"].contains(collection) => {
            format!("/{collection}/{{id}}")
        }
        _ => path.to_owned(),
    }
}

pub(super) async fn pipeline(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return Failure::bad_request("The request body is too large.").into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    let account = app
        .shared
        .account_of_authorization(authorization.as_deref());
    let seq = app.next_seq.fetch_add(1, Ordering::SeqCst);
    let body_json = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    });
    app.shared.lock().requests.push(RecordedRequest {
        seq,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        route: route_of(parts.uri.path()),
        status: None,
        body: body_json,
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        ngrok_version: header("ngrok-version"),
        authorized: account.is_some(),
    });

    let mut response = match gate(
        &app,
        authorization.as_deref(),
        account,
        header("ngrok-version"),
    )
    .await
    {
        Err(failure) => failure.into_response(),
        Ok(account) => {
            let spoiled = app.shared.lock().take_scripted(
                parts.method.as_str(),
                parts.uri.path(),
                &route_of(parts.uri.path()),
            );
            parts.extensions.insert(Caller(account));
            match spoiled {
                None => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Some(Spoiled::MalformedBody) => {
                    let answer = next
                        .run(Request::from_parts(parts, Body::from(bytes)))
                        .await;
                    malformed(answer).await
                }
                Some(Spoiled::Redirect) => redirect(parts.uri.path()),
                Some(Spoiled::ErrorPage { status }) => error_page(status),
            }
        }
    };
    if !response.headers().contains_key(OPERATION_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(&new_operation_id())
    {
        response.headers_mut().insert(OPERATION_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    if let Some(recorded) = app
        .shared
        .lock()
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.seq == seq)
    {
        recorded.status = Some(status);
    }
    response
}

/// Everything that may refuse a request before a handler sees it, in ngrok's order. Answers
/// the caller's account.
async fn gate(
    app: &App,
    authorization: Option<&str>,
    account: Option<Account>,
    version: Option<String>,
) -> Result<Account, Failure> {
    let latency = app.shared.lock().faults.latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if authorization.is_none() {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            codes::MISSING_API_KEY,
            "Authentication failed: provide an API key in the Authorization header as 'Bearer <key>'.",
        ));
    }
    let Some(account) = account else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_API_KEY,
            "Authentication failed: the API key is not valid.",
        ));
    };
    match version.as_deref().map(str::trim) {
        None => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                codes::VERSION_HEADER,
                "The Ngrok-Version header is required. Set it to 2.",
            ));
        }
        Some("2") => {}
        Some(_) => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                codes::VERSION_HEADER,
                "Unsupported Ngrok-Version. The supported version is 2.",
            ));
        }
    }
    let mut state = app.shared.lock();
    let limit = state.faults.rate_limit_per_minute;
    if let Err(wait_secs) = state.take_rate_slot(&app.shared.api_keys[account], Instant::now()) {
        let mut failure = Failure::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!(
                "You have exceeded the API rate limit of {limit} requests per minute. Try again later."
            ),
        );
        failure.retry_after_secs = Some(wait_secs);
        return Err(failure);
    }
    let mut rng = rand::rng();
    if state.faults.error_rate > 0.0 && rng.random_bool(state.faults.error_rate.min(1.0)) {
        let (status, code) = [
            (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
            (StatusCode::BAD_GATEWAY, codes::BAD_GATEWAY),
            (StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE),
        ][rng.random_range(0..3)];
        return Err(Failure::new(
            status,
            code,
            "An internal error occurred (injected by the emulator).",
        ));
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_replace_ids() {
        assert_eq!(
            route_of("/event_destinations/ed_1"),
            "/event_destinations/{id}"
        );
        assert_eq!(route_of("/event_subscriptions"), "/event_subscriptions");
        assert_eq!(route_of("/other/x"), "/other/x");
    }
}
