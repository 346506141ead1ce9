//! The emulated ngrok API: request pipeline (record → latency → auth → version → rate limit
//! → injected errors → scripted answers) and the handlers of `/event_destinations`,
//! `/event_subscriptions` and `GET /api_keys`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::connection::ConnectionKiller;
use crate::failure::{Failure, OPERATION_ID_HEADER, codes};
use crate::ids::{new_id, new_operation_id, now_rfc3339};
use crate::resources::{
    Kind, destination_fields, parse_object, render_destination, render_subscription,
    subscription_fields,
};
use crate::state::{Account, RecordedRequest, Shared, Spoiled, State as Store, Stored};

/// Largest request body read.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Largest page (`limit`).
const MAX_PAGE: usize = 100;

/// The account of the request's API key, put into the extensions of every request that
/// passed the gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub Account);

/// What every handler sees.
pub(crate) struct App {
    pub shared: Arc<Shared>,
    /// `host:port` the server listens on, for `uri` fields when a request has no `Host`.
    pub listen_host: String,
    pub next_seq: AtomicU64,
}

impl App {
    /// Base of the `uri` fields: the address the client used to reach us (`Host`), else the
    /// listen address. Works behind a Kubernetes Service as well as on localhost.
    fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&self.listen_host);
        format!("http://{host}")
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let destinations = Router::new()
        .route(
            "/event_destinations",
            get(|s, c, h, q| list(Kind::Destination, s, c, h, q))
                .post(|s, c, r| create(Kind::Destination, s, c, r)),
        )
        .route(
            "/event_destinations/{id}",
            get(|s, c, h, p| fetch(Kind::Destination, s, c, h, p))
                .patch(|s, c, p, r| update(Kind::Destination, s, c, p, r))
                .delete(|s, c, p| delete(Kind::Destination, s, c, p)),
        )
        .route(
            "/event_subscriptions",
            get(|s, c, h, q| list(Kind::Subscription, s, c, h, q))
                .post(|s, c, r| create(Kind::Subscription, s, c, r)),
        )
        .route(
            "/event_subscriptions/{id}",
            get(|s, c, h, p| fetch(Kind::Subscription, s, c, h, p))
                .patch(|s, c, p, r| update(Kind::Subscription, s, c, p, r))
                .delete(|s, c, p| delete(Kind::Subscription, s, c, p)),
        )
        .route("/api_keys", get(list_api_keys))
        .fallback(|| async { Failure::not_found() })
        .method_not_allowed_fallback(|| async {
            Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "Method not allowed.",
            )
        });
    destinations
        .layer(middleware::from_fn_with_state(app.clone(), pipeline))
        .with_state(app)
}

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

async fn pipeline(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
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

/// A 2xx answer with its body cut in half (an empty body becomes `{`): JSON that does not
/// parse, with the status and headers of the real answer.
async fn malformed(answer: Response) -> Response {
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
fn redirect(path: &str) -> Response {
    let location = format!("https://moved.invalid{path}");
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// What a proxy in front of ngrok answers: HTML, not ngrok's error object.
fn error_page(status: u16) -> Response {
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

/// A stored object as the API answers it: a raw one exactly as stored.
fn render_stored(kind: Kind, stored: &Stored, base_url: &str) -> Value {
    if stored.raw {
        return Value::Object(stored.fields.clone());
    }
    render(kind, &stored.fields, base_url)
}

fn render(kind: Kind, stored: &Map<String, Value>, base_url: &str) -> Value {
    match kind {
        Kind::Destination => render_destination(stored, base_url),
        Kind::Subscription => render_subscription(stored, base_url),
    }
}

async fn read_json_body(request: Request) -> Result<Map<String, Value>, Failure> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(Failure::bad_request(
            "Content-Type must be application/json.",
        ));
    }
    let bytes: Bytes = to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| Failure::bad_request("The request body is too large."))?;
    parse_object(&bytes)
}

/// Validates a create (`id` = None) or update body sent by `account`: a subscription may
/// only name `account`'s destinations.
fn validate(
    kind: Kind,
    state: &Store,
    account: Account,
    body: Map<String, Value>,
    id: Option<&str>,
) -> Result<Map<String, Value>, Failure> {
    if let Some(marker) = &state.faults.refuse_marker
        && Value::Object(body.clone())
            .to_string()
            .contains(marker.as_str())
    {
        // As ngrok's validation messages do, the answer quotes the value it refused (when a
        // top-level text field holds the marker), whatever its length or script.
        let quoted = body
            .iter()
            .find_map(|(key, value)| {
                let text = value.as_str().filter(|t| t.contains(marker.as_str()))?;
                Some(format!(" Refused {key}: '{text}'."))
            })
            .unwrap_or_default();
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_TARGET,
            format!("The target could not be validated: ngrok cannot deliver to it.{quoted}"),
        ));
    }
    match kind {
        Kind::Destination => destination_fields(body, id),
        Kind::Subscription => subscription_fields(body, id, |dest| {
            state.owned(Kind::Destination, account, dest).is_some()
        }),
    }
}

async fn create(
    kind: Kind,
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    request: Request,
) -> Result<Response, Failure> {
    let base_url = app.base_url(request.headers());
    let killer = request.extensions().get::<ConnectionKiller>().cloned();
    let body = read_json_body(request).await?;
    let (rendered, drop_connection) = {
        let mut state = app.shared.lock();
        let mut fields = validate(kind, &state, account, body, None)?;
        let id = new_id(kind.id_prefix());
        fields.insert("id".into(), json!(id));
        fields.insert("created_at".into(), json!(now_rfc3339()));
        let rendered = render(kind, &fields, &base_url);
        state.collection(kind).insert(
            id,
            Stored {
                account,
                fields,
                raw: false,
            },
        );
        let rate = state.faults.drop_after_create_rate;
        (
            rendered,
            rate > 0.0 && rand::rng().random_bool(rate.min(1.0)),
        )
    };
    if let (true, Some(killer)) = (drop_connection, killer) {
        // Stored; now close the connection before any answer is written. The connection
        // task drops this future together with the connection.
        killer.kill();
        std::future::pending::<()>().await;
    }
    Ok((StatusCode::CREATED, Json(rendered)).into_response())
}

async fn fetch(
    kind: Kind,
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let state = app.shared.lock();
    let stored = state
        .owned(kind, account, &id)
        .ok_or_else(Failure::not_found)?;
    Ok(Json(render_stored(kind, stored, &app.base_url(&headers))))
}

async fn update(
    kind: Kind,
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, Failure> {
    let base_url = app.base_url(request.headers());
    let body = read_json_body(request).await?;
    let mut state = app.shared.lock();
    if state.owned(kind, account, &id).is_none() {
        return Err(Failure::not_found());
    }
    let fields = validate(kind, &state, account, body, Some(&id))?;
    let stored = state
        .owned_mut(kind, account, &id)
        .ok_or_else(Failure::not_found)?;
    // Fields replace whole values: a new target replaces the old one, secrets included.
    stored.fields.extend(fields);
    Ok(Json(render_stored(kind, stored, &base_url)))
}

async fn delete(
    kind: Kind,
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    let mut state = app.shared.lock();
    if state.owned(kind, account, &id).is_none() {
        return Err(Failure::not_found());
    }
    // Only the account's own subscriptions can name the destination.
    if kind == Kind::Destination && referenced_by_subscription(&state, account, &id) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            codes::DESTINATION_IN_USE,
            "The event destination is still referenced by an event subscription. Remove it from the subscription first.",
        ));
    }
    state.collection(kind).remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Whether one of `account`'s subscriptions names the destination.
fn referenced_by_subscription(state: &Store, account: Account, destination_id: &str) -> bool {
    state.objects.get(&Kind::Subscription).is_some_and(|subs| {
        subs.values()
            .filter(|sub| sub.account == account)
            .any(|sub| {
                sub.fields
                    .get("destination_ids")
                    .and_then(Value::as_array)
                    .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(destination_id)))
            })
    })
}

/// `before_id` and `limit` (1..=100, default 100) of a list request.
fn page_params(request_uri: &axum::http::Uri) -> Result<(Option<String>, usize), Failure> {
    let mut before_id = None;
    let mut limit = MAX_PAGE;
    for (key, value) in url::form_urlencoded::parse(request_uri.query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "before_id" => before_id = Some(value.into_owned()),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        Failure::bad_request(format!(
                            "Parameter 'limit' must be between 1 and {MAX_PAGE}."
                        ))
                    })?;
            }
            _ => {}
        }
    }
    Ok((before_id, limit))
}

/// A page of `items_key` at `collection_uri`: `items` are the candidates, newest first, already
/// after `before_id`; one more than `limit` tells that more remain.
fn page(items_key: &str, collection_uri: &str, mut items: Vec<Value>, limit: usize) -> Json<Value> {
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next_page_uri = match (has_more, items.last()) {
        (true, Some(last)) => json!(format!(
            "{collection_uri}?before_id={}&limit={limit}",
            last["id"].as_str().unwrap_or_default()
        )),
        _ => Value::Null,
    };
    Json(json!({
        items_key: items,
        "uri": collection_uri,
        "next_page_uri": next_page_uri,
    }))
}

async fn list(
    kind: Kind,
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    headers: HeaderMap,
    request_uri: axum::http::Uri,
) -> Result<Json<Value>, Failure> {
    let (before_id, limit) = page_params(&request_uri)?;
    let base_url = app.base_url(&headers);
    let collection_uri = format!("{base_url}/{}", kind.collection());
    let mut state = app.shared.lock();
    let all = state.collection(kind);
    // Ids sort by creation time, so "newest first" is descending id order.
    let older: Box<dyn Iterator<Item = (&String, &Stored)>> = match &before_id {
        Some(before) => Box::new(all.range::<String, _>(..before.clone()).rev()),
        None => Box::new(all.iter().rev()),
    };
    // Only the caller's account's objects.
    let items: Vec<Value> = older
        .map(|(_, stored)| stored)
        .filter(|stored| stored.account == account)
        .take(limit + 1)
        .map(|stored| render_stored(kind, stored, &base_url))
        .collect();
    Ok(page(kind.collection(), &collection_uri, items, limit))
}

/// `GET /api_keys`: the caller's account's keys (`APIKeyList`, items under `keys`), newest
/// first, paged like the other lists. As at ngrok, `token` is `null`: a key is shown only
/// when it is created.
async fn list_api_keys(
    State(app): State<Arc<App>>,
    Extension(Caller(account)): Extension<Caller>,
    headers: HeaderMap,
    request_uri: axum::http::Uri,
) -> Result<Json<Value>, Failure> {
    let (before_id, limit) = page_params(&request_uri)?;
    let base_url = app.base_url(&headers);
    let collection_uri = format!("{base_url}/api_keys");
    let items: Vec<Value> = app
        .shared
        .keys_of(account)
        .into_iter()
        .filter(|key| before_id.as_ref().is_none_or(|before| key.id < *before))
        .take(limit + 1)
        .map(|key| {
            json!({
                "id": key.id,
                "uri": format!("{collection_uri}/{}", key.id),
                "description": "",
                "metadata": "",
                "created_at": key.created_at,
                "token": null,
                "owner_id": "",
            })
        })
        .collect();
    Ok(page("keys", &collection_uri, items, limit))
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
