//! The handlers of `/event_destinations` and `/event_subscriptions`: create, fetch, update,
//! delete and list, one set for both collections ([`Kind`] says which). Each handler sees only
//! the caller's account's objects; another account's id answers 404 like an unknown one.

use std::sync::Arc;

use axum::body::{Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::paging::{page, page_params};
use super::{App, Caller, MAX_BODY_BYTES};
use crate::connection::ConnectionKiller;
use crate::failure::{Failure, codes};
use crate::ids::{new_id, now_rfc3339};
use crate::resources::{
    Kind, destination_fields, parse_object, render_destination, render_subscription,
    subscription_fields,
};
use crate::state::{Account, State as Store, Stored};

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

pub(super) async fn create(
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

pub(super) async fn fetch(
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

pub(super) async fn update(
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

pub(super) async fn delete(
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

pub(super) async fn list(
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
