//! Paging shared by every list (`/event_destinations`, `/event_subscriptions`, `/api_keys`):
//! the `before_id` and `limit` parameters and the envelope with `uri` and `next_page_uri`,
//! as ngrok's lists page.

use axum::Json;
use serde_json::{Value, json};

use crate::failure::Failure;

/// Largest page (`limit`).
const MAX_PAGE: usize = 100;

/// `before_id` and `limit` (1..=100, default 100) of a list request.
pub(super) fn page_params(
    request_uri: &axum::http::Uri,
) -> Result<(Option<String>, usize), Failure> {
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
pub(super) fn page(
    items_key: &str,
    collection_uri: &str,
    mut items: Vec<Value>,
    limit: usize,
) -> Json<Value> {
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
