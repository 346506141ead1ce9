//! `GET /api_keys`, the one call on API keys the emulator answers: a client lists its
//! account's keys to tell which account a key belongs to (two keys of one account list the
//! same ids).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::paging::{page, page_params};
use super::{App, Caller};
use crate::failure::Failure;

/// `GET /api_keys`: the caller's account's keys (`APIKeyList`, items under `keys`), newest
/// first, paged like the other lists. As at ngrok, `token` is `null`: a key is shown only
/// when it is created.
pub(super) async fn list_api_keys(
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
