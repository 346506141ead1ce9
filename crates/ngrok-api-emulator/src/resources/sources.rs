//! Validation of a subscription's event sources: `fields` and `filter`.
//!
//! Neither is in ngrok's published spec (they come from its Terraform provider and its event
//! filtering docs), so what is refused follows ngrok's error catalogue and, where that says
//! nothing, the emulator's guesses, which are kept together here to be found and revised.

use serde_json::Value;

use super::validation::expect_str;
use crate::failure::{Failure, codes};

/// Event types whose sources record traffic and so take `fields` (ngrok's Terraform provider
/// sends `sources[].fields` for them). The emulator's guess at the list: ngrok documents no list.
const TRAFFIC_EVENT_TYPES: [&str; 2] = ["http_request_complete.", "tcp_connection_closed."];

/// The `fields` of a source of event type `kind`, as ngrok's error catalogue describes them:
/// `ERR_NGROK_5401` for fields on an event type that records none, `ERR_NGROK_5405` for a
/// field that is not a dotted name (what counts as invalid is the emulator's guess). ngrok
/// also has `ERR_NGROK_5400` (a traffic source without fields); the emulator does not enforce
/// it, since ngrok's published spec and SDKs create sources with a type only.
pub(super) fn source_fields(kind: &str, fields: Option<&Value>) -> Result<Vec<String>, Failure> {
    let fields = match fields {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(fields)) => fields,
        Some(_) => {
            return Err(Failure::bad_request(
                "Field 'sources[].fields' must be an array.",
            ));
        }
    };
    if !fields.is_empty() && !TRAFFIC_EVENT_TYPES.iter().any(|t| kind.starts_with(t)) {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            codes::SOURCE_FIELDS_NOT_ALLOWED,
            format!("Event Sources for the \"{kind}\" event may not specify fields."),
        ));
    }
    fields
        .iter()
        .map(|field| {
            let field = expect_str(field, "sources[].fields[]")?;
            let valid = !field.is_empty()
                && field.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
            if valid {
                Ok(field.to_owned())
            } else {
                Err(Failure::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    codes::INVALID_EVENT_FIELD,
                    format!("Invalid Event Field: \"{field}\""),
                ))
            }
        })
        .collect()
}

/// Event types whose sources take a `filter`: exactly these two, as ngrok's event filtering
/// docs say ("The only events that can be filtered today are http_request_complete.v0 and
/// tcp_connection_closed.v0").
const FILTERABLE_EVENT_TYPES: [&str; 2] = ["http_request_complete.v0", "tcp_connection_closed.v0"];

/// The `filter` of a source of event type `kind` (`None` when absent, `null` or empty), as
/// ngrok's docs and error catalogue describe it: `ERR_NGROK_5402` for a filter on an event
/// type that cannot be filtered, `ERR_NGROK_5404` for an invalid expression. ngrok parses CEL;
/// the emulator only refuses what no CEL parser accepts (unbalanced brackets or quotes, or an
/// expression that does not start from `ev`), its guess at "invalid".
pub(super) fn source_filter(kind: &str, filter: Option<&Value>) -> Result<Option<String>, Failure> {
    let filter = match filter {
        None | Some(Value::Null) => return Ok(None),
        Some(filter) => expect_str(filter, "sources[].filter")?,
    };
    if filter.is_empty() {
        return Ok(None);
    }
    if !FILTERABLE_EVENT_TYPES.contains(&kind) {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            codes::SOURCE_FILTER_NOT_ALLOWED,
            format!("Event Sources for the \"{kind}\" event may not specify a filter."),
        ));
    }
    if let Err(problem) = cel_shape(filter) {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            codes::INVALID_SOURCE_FILTER,
            format!("Event Source filter is invalid: \"{problem}\""),
        ));
    }
    Ok(Some(filter.to_owned()))
}

/// What no CEL parser accepts: unbalanced `()[]{}`, an unterminated string, or no `ev`.
fn cel_shape(filter: &str) -> Result<(), &'static str> {
    let mut open = Vec::new();
    let mut chars = filter.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => loop {
                match chars.next() {
                    None => return Err("unterminated string"),
                    Some('\\') => {
                        chars.next();
                    }
                    Some(q) if q == c => break,
                    Some(_) => {}
                }
            },
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let expected = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(expected) {
                    return Err("unbalanced brackets");
                }
            }
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err("unbalanced brackets");
    }
    if !filter.contains("ev.") {
        return Err("a filter refers to the event as ev");
    }
    Ok(())
}
