//! The target of an event destination (`EventTarget`): exactly one of the services ngrok
//! delivers to, each with its own fields, secrets included. The one part of the wire types
//! whose shape ngrok grows (a new service, a new way to sign in to AWS), so the one that reads
//! an unknown shape as a named error rather than as another shape or as none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;

/// Where events go (`EventTarget`): exactly one of the spec's target objects.
///
/// Serializes as `{"kinesis": {...}}`; deserializes from an object with exactly one non-null
/// target; `null` siblings are ignored. A non-null key this client does not know (a target
/// type ngrok added later) fails the parse, naming the key: such a destination cannot be
/// compared, and must never be read as another target or as none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawEventTarget")]
pub enum EventTarget {
    Firehose(EventTargetFirehose),
    Kinesis(EventTargetKinesis),
    CloudwatchLogs(EventTargetCloudwatchLogs),
    Datadog(EventTargetDatadog),
    AzureLogsIngestion(EventTargetAzureLogsIngestion),
}

impl EventTarget {
    /// The wire name of the target (`"kinesis"`, `"cloudwatch_logs"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Firehose(_) => "firehose",
            Self::Kinesis(_) => "kinesis",
            Self::CloudwatchLogs(_) => "cloudwatch_logs",
            Self::Datadog(_) => "datadog",
            Self::AzureLogsIngestion(_) => "azure_logs_ingestion",
        }
    }

    /// A copy with every secret field set to `None`: the part of a target ngrok shows back, so
    /// a desired target can be compared with an observed one.
    pub fn without_secrets(&self) -> Self {
        let mut target = self.clone();
        match &mut target {
            Self::Firehose(t) => t.auth.clear_secrets(),
            Self::Kinesis(t) => t.auth.clear_secrets(),
            Self::CloudwatchLogs(t) => t.auth.clear_secrets(),
            Self::Datadog(t) => t.api_key = None,
            Self::AzureLogsIngestion(t) => t.client_secret = None,
        }
        target
    }
}

/// The wire form of [`EventTarget`]: every key optional and possibly `null`.
#[derive(Deserialize)]
struct RawEventTarget {
    #[serde(default)]
    firehose: Option<EventTargetFirehose>,
    #[serde(default)]
    kinesis: Option<EventTargetKinesis>,
    #[serde(default)]
    cloudwatch_logs: Option<EventTargetCloudwatchLogs>,
    #[serde(default)]
    datadog: Option<EventTargetDatadog>,
    #[serde(default)]
    azure_logs_ingestion: Option<EventTargetAzureLogsIngestion>,
    /// Keys this client does not know.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl TryFrom<RawEventTarget> for EventTarget {
    type Error = String;

    fn try_from(raw: RawEventTarget) -> Result<Self, String> {
        if let Some(unknown) = unknown_keys(&raw.unknown) {
            return Err(format!("unknown target type {unknown}"));
        }
        let set: Vec<EventTarget> = [
            raw.firehose.map(Self::Firehose),
            raw.kinesis.map(Self::Kinesis),
            raw.cloudwatch_logs.map(Self::CloudwatchLogs),
            raw.datadog.map(Self::Datadog),
            raw.azure_logs_ingestion.map(Self::AzureLogsIngestion),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[EventTarget; 1]>::try_from(set) {
            Ok([target]) => Ok(target),
            Err(set) => Err(format!(
                "an event target must have exactly one known target set, found {}",
                set.len()
            )),
        }
    }
}

/// Amazon Kinesis Data Firehose (`EventTargetFirehose`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTargetFirehose {
    pub auth: AwsAuth,
    pub delivery_stream_arn: String,
}

/// Amazon Kinesis (`EventTargetKinesis`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTargetKinesis {
    pub auth: AwsAuth,
    pub stream_arn: String,
}

/// Amazon CloudWatch Logs (`EventTargetCloudwatchLogs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTargetCloudwatchLogs {
    pub auth: AwsAuth,
    pub log_group_arn: String,
}

/// Datadog (`EventTargetDatadog`). The spec marks no field required; the optional ones are
/// omitted from requests when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTargetDatadog {
    /// Withheld (`None`) in responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddtags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddsite: Option<String>,
}

/// Azure Monitor logs ingestion (`EventTargetAzureLogsIngestion`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTargetAzureLogsIngestion {
    pub tenant_id: String,
    pub client_id: String,
    /// Withheld (`None`) in responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    pub logs_ingestion_uri: String,
    pub data_collection_rule_id: String,
    pub data_collection_stream_name: String,
}

/// How ngrok signs in to AWS (`AWSAuth`): exactly one of `role` or `creds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawAwsAuth")]
pub enum AwsAuth {
    Role(AwsRole),
    Creds(AwsCredentials),
}

impl AwsAuth {
    fn clear_secrets(&mut self) {
        if let Self::Creds(creds) = self {
            creds.aws_secret_access_key = None;
        }
    }
}

#[derive(Deserialize)]
struct RawAwsAuth {
    #[serde(default)]
    role: Option<AwsRole>,
    #[serde(default)]
    creds: Option<AwsCredentials>,
    /// Keys this client does not know.
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

impl TryFrom<RawAwsAuth> for AwsAuth {
    type Error = String;

    fn try_from(raw: RawAwsAuth) -> Result<Self, String> {
        if let Some(unknown) = unknown_keys(&raw.unknown) {
            return Err(format!("unknown AWS auth type {unknown}"));
        }
        match (raw.role, raw.creds) {
            (Some(role), None) => Ok(Self::Role(role)),
            (None, Some(creds)) => Ok(Self::Creds(creds)),
            (Some(_), Some(_)) => {
                Err("AWS auth must have exactly one of role or creds, found both".into())
            }
            (None, None) => {
                Err("AWS auth must have exactly one of role or creds, found neither".into())
            }
        }
    }
}

/// An IAM role ngrok assumes (`AWSRole`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsRole {
    pub role_arn: String,
}

/// A long-term AWS access key (`AWSCredentials`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCredentials {
    pub aws_access_key_id: String,
    /// Always set in requests; withheld (`None`) in responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<Secret>,
}

/// The non-null keys of `unknown`, for a message: at most three, each a bounded plain word (the
/// keys come from the network).
fn unknown_keys(unknown: &BTreeMap<String, Value>) -> Option<String> {
    let keys: Vec<String> = unknown
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, _)| {
            key.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect()
        })
        .collect();
    match keys.len() {
        0 => None,
        1..=3 => Some(keys.join(", ")),
        n => Some(format!("{} and {} more", keys[..3].join(", "), n - 3)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ambiguous_targets_and_auth_are_rejected() {
        let two_targets = json!({"kinesis": {"auth": {"role": {"role_arn": "r"}}, "stream_arn": "s"},
                                 "firehose": {"auth": {"role": {"role_arn": "r"}}, "delivery_stream_arn": "s"}});
        assert!(serde_json::from_value::<EventTarget>(two_targets).is_err());
        assert!(serde_json::from_value::<EventTarget>(json!({"kinesis": null})).is_err());
        let both = json!({"role": {"role_arn": "r"}, "creds": {"aws_access_key_id": "a"}});
        assert!(serde_json::from_value::<AwsAuth>(both).is_err());
        assert!(serde_json::from_value::<AwsAuth>(json!({})).is_err());
    }

    /// A target type or auth type ngrok adds later is an error naming it, never "no target"
    /// and never the known sibling.
    #[test]
    fn unknown_target_and_auth_types_are_named_errors() {
        let splunk = json!({"kinesis": null, "splunk": {"token": "t"}});
        let error = serde_json::from_value::<EventTarget>(splunk).unwrap_err();
        assert!(
            error.to_string().contains("unknown target type splunk"),
            "{error}"
        );
        let beside_a_known_one = json!({"kinesis": {"auth": {"role": {"role_arn": "r"}}, "stream_arn": "s"},
                                        "splunk": {"token": "t"}});
        assert!(serde_json::from_value::<EventTarget>(beside_a_known_one).is_err());
        let null_unknown = json!({"kinesis": {"auth": {"role": {"role_arn": "r"}}, "stream_arn": "s"},
                                  "splunk": null});
        assert!(serde_json::from_value::<EventTarget>(null_unknown).is_ok());
        let oidc = json!({"role": null, "creds": null, "oidc": {"x": 1}});
        let error = serde_json::from_value::<AwsAuth>(oidc).unwrap_err();
        assert!(
            error.to_string().contains("unknown AWS auth type oidc"),
            "{error}"
        );
    }
}
