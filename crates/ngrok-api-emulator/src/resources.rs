//! Validation of raw request bodies and rendering of responses, per resource.
//!
//! Request bodies are checked as raw JSON, independently of any client's types, and more
//! strictly than ngrok documents, so that client bugs surface here: unknown fields are
//! rejected, and a top-level field sent as `null` is rejected (a client should omit what it
//! does not set). Inside `target` and `auth`, `null` siblings are accepted, as the docs say
//! ("exactly one of the following objects, leaving the rest null").
//!
//! Objects are stored in a normalized form that keeps secrets; responses withhold them.

use serde_json::{Map, Value, json};

use crate::failure::{Failure, codes};

/// ngrok's limits: bytes for a destination, characters for a subscription (see [`Kind::length`]).
pub(crate) const MAX_METADATA_LENGTH: usize = 4096;
pub(crate) const MAX_DESCRIPTION_LENGTH: usize = 255;

/// The two collections the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Destination,
    Subscription,
}

impl Kind {
    pub fn collection(self) -> &'static str {
        match self {
            Self::Destination => "event_destinations",
            Self::Subscription => "event_subscriptions",
        }
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Destination => "ed_",
            Self::Subscription => "esb_",
        }
    }

    /// The length of a description or metadata as ngrok's spec counts it for this kind: a
    /// destination's in bytes, a subscription's in characters.
    pub fn length(self, text: &str) -> (usize, &'static str) {
        match self {
            Self::Destination => (text.len(), "bytes"),
            Self::Subscription => (text.chars().count(), "characters"),
        }
    }

    pub fn of_collection(collection: &str) -> Option<Self> {
        [Self::Destination, Self::Subscription]
            .into_iter()
            .find(|kind| kind.collection() == collection)
    }

    pub fn of_id(id: &str) -> Option<Self> {
        [Self::Destination, Self::Subscription]
            .into_iter()
            .find(|kind| id.starts_with(kind.id_prefix()))
    }
}

const AWS_TARGETS: [(&str, &str); 3] = [
    ("firehose", "delivery_stream_arn"),
    ("kinesis", "stream_arn"),
    ("cloudwatch_logs", "log_group_arn"),
];
const TARGET_KINDS: [&str; 5] = [
    "firehose",
    "kinesis",
    "cloudwatch_logs",
    "datadog",
    "azure_logs_ingestion",
];
const DATADOG_FIELDS: [&str; 4] = ["api_key", "ddtags", "service", "ddsite"];
const AZURE_FIELDS: [&str; 6] = [
    "tenant_id",
    "client_id",
    "client_secret",
    "logs_ingestion_uri",
    "data_collection_rule_id",
    "data_collection_stream_name",
];

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

/// Event types whose sources record traffic and so take `fields` (ngrok's Terraform provider
/// sends `sources[].fields` for them). The emulator's guess at the list: ngrok documents no list.
const TRAFFIC_EVENT_TYPES: [&str; 2] = ["http_request_complete.", "tcp_connection_closed."];

/// The `fields` of a source of event type `kind`, as ngrok's error catalogue describes them:
/// `ERR_NGROK_5401` for fields on an event type that records none, `ERR_NGROK_5405` for a
/// field that is not a dotted name (what counts as invalid is the emulator's guess). ngrok
/// also has `ERR_NGROK_5400` (a traffic source without fields); the emulator does not enforce
/// it, since ngrok's published spec and SDKs create sources with a type only.
fn source_fields(kind: &str, fields: Option<&Value>) -> Result<Vec<String>, Failure> {
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
fn source_filter(kind: &str, filter: Option<&Value>) -> Result<Option<String>, Failure> {
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

/// A stored destination as the API shows it: every target key present, unset ones `null`,
/// secrets withheld.
pub(crate) fn render_destination(stored: &Map<String, Value>, base_url: &str) -> Value {
    let id = stored["id"].as_str().unwrap_or_default();
    let mut target = Map::new();
    for kind in TARGET_KINDS {
        target.insert(kind.into(), Value::Null);
    }
    if let Some(Value::Object(set)) = stored.get("target") {
        for (kind, config) in set {
            target.insert(kind.clone(), render_target_config(kind, config));
        }
    }
    json!({
        "id": id,
        "uri": format!("{base_url}/event_destinations/{id}"),
        "created_at": stored["created_at"],
        "metadata": stored["metadata"],
        "description": stored["description"],
        "format": stored["format"],
        "target": target,
    })
}

fn render_target_config(kind: &str, config: &Value) -> Value {
    let field = |name: &str| config.get(name).cloned().unwrap_or(Value::Null);
    if let Some((_, arn_field)) = AWS_TARGETS.iter().find(|(name, _)| *name == kind) {
        let auth = config.get("auth").cloned().unwrap_or(Value::Null);
        let creds = auth.get("creds").map(|creds| {
            json!({"aws_access_key_id": creds.get("aws_access_key_id"), "aws_secret_access_key": null})
        });
        json!({
            "auth": {"role": auth.get("role").cloned().unwrap_or(Value::Null), "creds": creds},
            *arn_field: field(arn_field),
        })
    } else if kind == "datadog" {
        json!({"api_key": null, "ddtags": field("ddtags"), "service": field("service"), "ddsite": field("ddsite")})
    } else {
        let mut out: Map<String, Value> = AZURE_FIELDS
            .iter()
            .map(|f| ((*f).to_owned(), field(f)))
            .collect();
        out.insert("client_secret".into(), Value::Null);
        Value::Object(out)
    }
}

/// A stored subscription as the API shows it.
pub(crate) fn render_subscription(stored: &Map<String, Value>, base_url: &str) -> Value {
    let id = stored["id"].as_str().unwrap_or_default();
    let uri = format!("{base_url}/event_subscriptions/{id}");
    let sources: Vec<Value> = stored["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|source| {
            let kind = source["type"].as_str().unwrap_or_default();
            let mut rendered = json!({"type": kind, "uri": format!("{uri}/sources/{kind}")});
            // Only when set: the published spec's EventSource has neither `fields` nor `filter`.
            for key in ["fields", "filter"] {
                if let Some(value) = source.get(key) {
                    rendered[key] = value.clone();
                }
            }
            rendered
        })
        .collect();
    let destinations: Vec<Value> = stored["destination_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|dest| json!({"id": dest, "uri": format!("{base_url}/event_destinations/{dest}")}))
        .collect();
    json!({
        "id": id,
        "uri": uri,
        "created_at": stored["created_at"],
        "metadata": stored["metadata"],
        "description": stored["description"],
        "sources": sources,
        "destinations": destinations,
    })
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

fn expect_str<'a>(value: &'a Value, what: &str) -> Result<&'a str, Failure> {
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
