//! Validation of create and update bodies, and their normalization into the form stored.
//!
//! A body is checked as raw JSON against what ngrok's spec allows for each resource, with
//! ngrok's error codes; what passes is normalized (nulls inside a target dropped, defaults of
//! a create filled in) so that storage and rendering never see a shape the checks refused.

use serde_json::{Map, Value, json};

use super::sources::{source_fields, source_filter};
use super::{
    AWS_TARGETS, AZURE_FIELDS, DATADOG_FIELDS, Kind, MAX_DESCRIPTION_LENGTH, MAX_METADATA_LENGTH,
    TARGET_KINDS,
};
use crate::failure::{Failure, codes};

/// Parses a request body that must be a JSON object.
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Failure> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(Failure::bad_request("The request body is not valid JSON.")),
    }
}

/// Checks the top-level fields shared by both resources and returns those present, with
/// `id` (allowed in updates only, and only equal to the path id) removed.
fn top_level(
    mut body: Map<String, Value>,
    kind: Kind,
    allowed: &[&str],
    path_id: Option<&str>,
) -> Result<Map<String, Value>, Failure> {
    if let Some(id) = body.remove("id")
        && path_id.is_none_or(|path_id| id.as_str() != Some(path_id))
    {
        return Err(Failure::bad_request(
            "Field 'id' must be absent or equal the id in the path.",
        ));
    }
    for (key, value) in &body {
        if !allowed.contains(&key.as_str()) {
            return Err(Failure::bad_request(format!("Unknown field '{key}'.")));
        }
        if value.is_null() {
            return Err(Failure::bad_request(format!(
                "Field '{key}' is null; omit fields that are not set."
            )));
        }
    }
    for (field, max, code) in [
        ("metadata", MAX_METADATA_LENGTH, codes::METADATA_TOO_LONG),
        (
            "description",
            MAX_DESCRIPTION_LENGTH,
            codes::DESCRIPTION_TOO_LONG,
        ),
    ] {
        if let Some(value) = body.get(field) {
            let (length, unit) = kind.length(expect_str(value, field)?);
            if length > max {
                return Err(Failure::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    code,
                    format!("Invalid {field} length: {length} {unit}, at most {max} allowed."),
                ));
            }
        }
    }
    Ok(body)
}

/// Validates a create (`path_id` = None) or update body of an event destination and returns
/// the normalized fields to store. A create defaults `format` to `json` when omitted.
pub(crate) fn destination_fields(
    body: Map<String, Value>,
    path_id: Option<&str>,
) -> Result<Map<String, Value>, Failure> {
    let creating = path_id.is_none();
    let mut fields = top_level(
        body,
        Kind::Destination,
        &["metadata", "description", "format", "target"],
        path_id,
    )?;
    if let Some(format) = fields.get("format")
        && !accepted_format(expect_str(format, "format")?)
    {
        return Err(Failure::new(
            axum::http::StatusCode::BAD_REQUEST,
            codes::INVALID_FORMAT,
            "Invalid format: the only accepted value is 'JSON'.",
        ));
    }
    match fields.remove("target") {
        Some(target) => {
            fields.insert("target".into(), normalize_target(&target)?);
        }
        None if creating => return Err(target_error("Field 'target' is required.")),
        None => {}
    }
    if creating {
        for key in ["metadata", "description"] {
            fields.entry(key).or_insert_with(|| json!(""));
        }
        fields.entry("format").or_insert_with(|| json!("json"));
    }
    Ok(fields)
}

/// ngrok documents `JSON` as the only format, its own SDKs send `""` when the caller sets none
/// (the Python client's default), and its examples and the operator send `json`: all three
/// must work against ngrok, so the emulator accepts the value without regard to case, or empty.
/// It stores the value as sent (ngrok's read-back of `""` is not documented: keeping it is the
/// stricter test of a client that compares it).
fn accepted_format(format: &str) -> bool {
    format.is_empty() || format.eq_ignore_ascii_case("json")
}

/// Validates a create or update body of an event subscription. `destination_exists` checks
/// each referenced destination id.
pub(crate) fn subscription_fields(
    body: Map<String, Value>,
    path_id: Option<&str>,
    destination_exists: impl Fn(&str) -> bool,
) -> Result<Map<String, Value>, Failure> {
    let mut fields = top_level(
        body,
        Kind::Subscription,
        &["metadata", "description", "sources", "destination_ids"],
        path_id,
    )?;
    if let Some(sources) = fields.get("sources") {
        let Value::Array(sources) = sources else {
            return Err(Failure::bad_request("Field 'sources' must be an array."));
        };
        let mut normalized = Vec::with_capacity(sources.len());
        for source in sources {
            let source = object(source, "sources[]", &["type", "fields", "filter"])?;
            let kind = required_str(source, "type", "sources[]")?;
            let fields = source_fields(kind, source.get("fields"))?;
            let filter = source_filter(kind, source.get("filter"))?;
            let mut stored = json!({"type": kind});
            if !fields.is_empty() {
                stored["fields"] = json!(fields);
            }
            if let Some(filter) = filter {
                stored["filter"] = json!(filter);
            }
            normalized.push(stored);
        }
        fields.insert("sources".into(), Value::Array(normalized));
    }
    if let Some(ids) = fields.get("destination_ids") {
        let Some(ids) = ids.as_array() else {
            return Err(Failure::bad_request(
                "Field 'destination_ids' must be an array.",
            ));
        };
        for id in ids {
            let id = expect_str(id, "destination_ids[]")?;
            if !destination_exists(id) {
                return Err(Failure::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    codes::UNKNOWN_DESTINATION,
                    "destination_ids names an event destination that does not exist.",
                ));
            }
        }
    }
    if path_id.is_none() {
        for key in ["metadata", "description"] {
            fields.entry(key).or_insert_with(|| json!(""));
        }
        for key in ["sources", "destination_ids"] {
            fields.entry(key).or_insert_with(|| json!([]));
        }
    }
    Ok(fields)
}

/// Checks a target and returns it as `{kind: {fields without nulls}}`.
fn normalize_target(target: &Value) -> Result<Value, Failure> {
    let target = object(target, "target", &TARGET_KINDS)?;
    let set: Vec<(&String, &Value)> = target.iter().filter(|(_, v)| !v.is_null()).collect();
    let [(kind, config)] = set.as_slice() else {
        return Err(target_error(
            "An event target must contain exactly one of firehose, kinesis, cloudwatch_logs, datadog, azure_logs_ingestion.",
        ));
    };
    let normalized = if let Some((_, arn_field)) = AWS_TARGETS.iter().find(|(name, _)| name == kind)
    {
        let config = object(config, kind, &["auth", arn_field])?;
        let auth = config
            .get("auth")
            .filter(|v| !v.is_null())
            .ok_or_else(|| target_error(format!("Field '{kind}.auth' is required.")))?;
        json!({"auth": normalize_aws_auth(auth)?, *arn_field: required_str(config, arn_field, kind)?})
    } else if *kind == "datadog" {
        let config = object(config, kind, &DATADOG_FIELDS)?;
        let mut out = Map::new();
        out.insert(
            "api_key".into(),
            json!(required_str(config, "api_key", kind)?),
        );
        for field in &DATADOG_FIELDS[1..] {
            if let Some(value) = config.get(*field).filter(|v| !v.is_null()) {
                out.insert((*field).into(), json!(expect_str(value, field)?));
            }
        }
        Value::Object(out)
    } else {
        let config = object(config, kind, &AZURE_FIELDS)?;
        let mut out = Map::new();
        for field in AZURE_FIELDS {
            out.insert(field.into(), json!(required_str(config, field, kind)?));
        }
        Value::Object(out)
    };
    Ok(json!({ kind.as_str(): normalized }))
}

fn normalize_aws_auth(auth: &Value) -> Result<Value, Failure> {
    let auth = object(auth, "auth", &["role", "creds"])?;
    let role = auth.get("role").filter(|v| !v.is_null());
    let creds = auth.get("creds").filter(|v| !v.is_null());
    match (role, creds) {
        (Some(role), None) => {
            let role = object(role, "role", &["role_arn"])?;
            Ok(json!({"role": {"role_arn": required_str(role, "role_arn", "role")?}}))
        }
        (None, Some(creds)) => {
            let creds = object(
                creds,
                "creds",
                &["aws_access_key_id", "aws_secret_access_key"],
            )?;
            Ok(json!({"creds": {
                "aws_access_key_id": required_str(creds, "aws_access_key_id", "creds")?,
                "aws_secret_access_key": required_str(creds, "aws_secret_access_key", "creds")?,
            }}))
        }
        _ => Err(target_error(
            "Exactly one of 'role' or 'creds' must be configured in 'auth'.",
        )),
    }
}

fn target_error(msg: impl Into<String>) -> Failure {
    Failure::new(
        axum::http::StatusCode::BAD_REQUEST,
        codes::INVALID_TARGET,
        msg,
    )
}

fn object<'a>(
    value: &'a Value,
    what: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, Failure> {
    let Value::Object(map) = value else {
        return Err(Failure::bad_request(format!(
            "Field '{what}' must be an object."
        )));
    };
    if let Some(key) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(Failure::bad_request(format!(
            "Unknown field '{what}.{key}'."
        )));
    }
    Ok(map)
}

pub(super) fn expect_str<'a>(value: &'a Value, what: &str) -> Result<&'a str, Failure> {
    value
        .as_str()
        .ok_or_else(|| Failure::bad_request(format!("Field '{what}' must be a string.")))
}

fn required_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, Failure> {
    match map.get(key) {
        None | Some(Value::Null) => Err(target_error(format!("Field '{what}.{key}' is required."))),
        Some(value) => {
            let value = expect_str(value, key)?;
            if value.is_empty() {
                return Err(target_error(format!(
                    "Field '{what}.{key}' must not be empty."
                )));
            }
            Ok(value)
        }
    }
}
