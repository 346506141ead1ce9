//! Observe mode's report: field by field, what a managing reconcile would change in ngrok.
//! Pure: it compares what ngrok shows of the desired object with what ngrok holds (both
//! normalised by [`crate::desired`], so that a reported difference is exactly one a PATCH
//! would send), and never carries a secret value.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field that differs between the spec and the ngrok object.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldDifference {
    /// The field, as ngrok's API names it, e.g. `description`, `target.kinesis.stream_arn`.
    pub path: String,
    /// What the spec wants; absent when the spec does not have the field, and for secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted: Option<String>,
    /// What ngrok holds; absent when ngrok does not have the field, and for secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// For a secret, whose values ngrok never shows: `differs` (its Secret changed since the
    /// operator last sent it) or `unknown` (never sent by the operator, as after adoption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What is known of the secret values ngrok holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretState {
    /// The values the operator last sent are the current ones.
    Sent,
    /// The Secrets changed since the operator last sent them.
    Changed,
    /// The operator never sent them (an adopted object).
    Unknown,
}

/// The differences between `wanted` and `actual` (ngrok's visible fields, without secrets),
/// plus one entry per path in `secret_paths` unless the secrets are known to be `Sent`.
/// Ordered by path.
pub fn differences(
    wanted: &Value,
    actual: &Value,
    secret_paths: &[String],
    secrets: SecretState,
) -> Vec<FieldDifference> {
    let (mut want, mut have) = (BTreeMap::new(), BTreeMap::new());
    leaves("", wanted, &mut want);
    leaves("", actual, &mut have);
    let mut paths: Vec<&String> = want.keys().chain(have.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out: Vec<FieldDifference> = paths
        .into_iter()
        .filter(|path| want.get(*path) != have.get(*path))
        .map(|path| FieldDifference {
            path: path.clone(),
            wanted: want.get(path).cloned(),
            actual: have.get(path).cloned(),
            secret: None,
        })
        .collect();
    let secret = match secrets {
        SecretState::Sent => None,
        SecretState::Changed => Some("differs"),
        SecretState::Unknown => Some("unknown"),
    };
    if let Some(secret) = secret {
        for path in secret_paths {
            out.push(FieldDifference {
                path: path.clone(),
                wanted: None,
                actual: None,
                secret: Some(secret.to_string()),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
    }
    out
}

/// The paths of the leaves that `with` sets and `without` does not: where a request carries
/// secrets that ngrok's answer withholds.
pub fn secret_paths(with: &Value, without: &Value) -> Vec<String> {
    let (mut all, mut shown) = (BTreeMap::new(), BTreeMap::new());
    leaves("", with, &mut all);
    leaves("", without, &mut shown);
    all.into_keys().filter(|p| !shown.contains_key(p)).collect()
}

/// Every leaf of `value` by dotted path: strings as they are, lists and numbers as JSON;
/// `null` and empty objects are absent.
fn leaves(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, value, out);
            }
        }
        Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equal_objects_have_no_differences() {
        let object = json!({"description": "d", "target": {"kinesis": {"stream_arn": "arn:a"}}});
        assert!(differences(&object, &object, &[], SecretState::Sent).is_empty());
    }

    #[test]
    fn each_differing_leaf_is_reported_with_both_values() {
        let wanted = json!({"description": "new", "metadata": "", "sources": ["a.v0", "b.v0"],
                            "target": {"kinesis": {"stream_arn": "arn:a", "auth": {"role": {"role_arn": "arn:r"}}}}});
        let actual = json!({"description": "old", "metadata": "", "sources": ["a.v0"],
                            "target": {"firehose": {"delivery_stream_arn": "arn:f", "auth": {"role": {"role_arn": "arn:r"}}}}});
        let report = differences(&wanted, &actual, &[], SecretState::Sent);
        let summary: Vec<(&str, Option<&str>, Option<&str>)> = report
            .iter()
            .map(|d| (d.path.as_str(), d.wanted.as_deref(), d.actual.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("description", Some("new"), Some("old")),
                ("sources", Some(r#"["a.v0","b.v0"]"#), Some(r#"["a.v0"]"#)),
                ("target.firehose.auth.role.role_arn", None, Some("arn:r")),
                ("target.firehose.delivery_stream_arn", None, Some("arn:f")),
                ("target.kinesis.auth.role.role_arn", Some("arn:r"), None),
                ("target.kinesis.stream_arn", Some("arn:a"), None),
            ]
        );
    }

    #[test]
    fn secrets_are_reported_without_values() {
        let with = json!({"target": {"datadog": {"api_key": "dd-secret-value", "ddsite": "eu"}}});
        let without = json!({"target": {"datadog": {"api_key": null, "ddsite": "eu"}}});
        let paths = secret_paths(&with, &without);
        assert_eq!(paths, ["target.datadog.api_key"]);
        assert!(differences(&without, &without, &paths, SecretState::Sent).is_empty());
        for (state, word) in [
            (SecretState::Changed, "differs"),
            (SecretState::Unknown, "unknown"),
        ] {
            let report = differences(&without, &without, &paths, state);
            assert_eq!(
                report,
                [FieldDifference {
                    path: "target.datadog.api_key".into(),
                    wanted: None,
                    actual: None,
                    secret: Some(word.into()),
                }]
            );
            let text = serde_json::to_string(&report).unwrap();
            assert!(!text.contains("dd-secret-value"), "{text}");
        }
    }
}
