//! Rendering: a stored object as the API answers it. Every target key is present (unset
//! ones `null`) and secrets are withheld, so that a client never sees a secret it sent and
//! always sees the full shape of ngrok's spec.

use serde_json::{Map, Value, json};

use super::{AWS_TARGETS, AZURE_FIELDS, TARGET_KINDS};

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
