//! `EventDestination`: where ngrok sends events, and how it authenticates there.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, DeletionPolicy, SecretKeyRef};

/// An ngrok Event Destination: where ngrok sends events, and how it authenticates there.
///
/// The destination receives nothing until an Event Subscription points at it.
// Each `printcolumn(...)` repeats `type_ = ...`; clippy mistakes that for a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "events.ngrok.io",
    version = "v1alpha1",
    kind = "EventDestination",
    namespaced,
    status = "EventDestinationStatus",
    shortname = "ned",
    category = "ngrok",
    derive = "PartialEq",
    doc = "An ngrok Event Destination managed from Kubernetes.",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "Target", type_ = "string", json_path = ".status.target"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = "1",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EventDestinationSpec {
    /// Human-readable description, shown in the ngrok dashboard. At most 255 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), extend("x-kubernetes-validations" = [{
        "rule": "size(bytes(self)) <= 255",
        "message": "description must be at most 255 bytes in UTF-8 (ngrok's limit)",
    }]))]
    pub description: Option<String>,

    /// Arbitrary machine-readable data, sent to ngrok verbatim (often JSON). At most 4096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), extend("x-kubernetes-validations" = [{
        "rule": "size(bytes(self)) <= 4096",
        "message": "metadata must be at most 4096 bytes in UTF-8 (ngrok's limit)",
    }]))]
    pub metadata: Option<String>,

    /// Format events are serialized in. `json` is the only value ngrok accepts.
    #[serde(default)]
    pub format: Format,

    /// What happens to the ngrok destination when this resource is deleted: `Delete` removes it
    /// from ngrok, `Retain` leaves it in place. Unset: the namespace's annotation
    /// `events.ngrok.io/default-deletion-policy`, else the operator's default (`Delete` unless
    /// set otherwise); `status.deletionPolicy` shows the policy in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::optional_deletion_policy")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The ngrok API key to use for this destination, from a Secret in this namespace.
    /// Unset: the operator's own API key (one ngrok account for the whole operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_ref: Option<SecretKeyRef>,

    /// Where ngrok sends events: exactly one of kinesis, firehose, cloudwatchLogs, datadog,
    /// azureLogsIngestion. Amazon S3 is reached through a Firehose delivery stream.
    pub target: Target,
}

/// Serialization format of the events.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
}

/// Where ngrok delivers events. Exactly one variant.
///
/// `oneOf` already refuses zero or two targets on every version; the CEL rule (Kubernetes
/// ≥ 1.25; older servers drop it) says so in one readable message.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.kinesis) ? 1 : 0) + (has(self.firehose) ? 1 : 0) + (has(self.cloudwatchLogs) ? 1 : 0) + (has(self.datadog) ? 1 : 0) + (has(self.azureLogsIngestion) ? 1 : 0) == 1",
    "message": "exactly one target is required: kinesis, firehose, cloudwatchLogs, datadog or azureLogsIngestion",
}]))]
pub enum Target {
    /// Deliver into an Amazon Kinesis data stream.
    Kinesis(KinesisTarget),
    /// Deliver into an Amazon Kinesis Data Firehose delivery stream (also the way into S3).
    Firehose(FirehoseTarget),
    /// Deliver into an Amazon CloudWatch Logs log group.
    CloudwatchLogs(CloudwatchLogsTarget),
    /// Deliver into Datadog logs.
    Datadog(DatadogTarget),
    /// Deliver into Azure Monitor through the Logs Ingestion API.
    AzureLogsIngestion(AzureLogsIngestionTarget),
}

impl Target {
    /// The target's name as written in the spec; shown in the Target printer column.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Kinesis(_) => "kinesis",
            Target::Firehose(_) => "firehose",
            Target::CloudwatchLogs(_) => "cloudwatchLogs",
            Target::Datadog(_) => "datadog",
            Target::AzureLogsIngestion(_) => "azureLogsIngestion",
        }
    }

    /// Every Secret key this target reads.
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        match self {
            Target::Kinesis(KinesisTarget { auth, .. })
            | Target::Firehose(FirehoseTarget { auth, .. })
            | Target::CloudwatchLogs(CloudwatchLogsTarget { auth, .. }) => match auth {
                AwsAuth::Role(_) => vec![],
                AwsAuth::Creds(creds) => {
                    vec![&creds.access_key_id_ref, &creds.secret_access_key_ref]
                }
            },
            Target::Datadog(datadog) => vec![&datadog.api_key_ref],
            Target::AzureLogsIngestion(azure) => vec![&azure.client_secret_ref],
        }
    }
}

/// Delivery into an Amazon Kinesis data stream.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KinesisTarget {
    /// ARN of the Kinesis stream, e.g. `arn:aws:kinesis:us-east-2:123456789012:stream/mystream`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^arn:"))]
    pub stream_arn: String,
    /// How ngrok authenticates to AWS: exactly one of `role` or `creds`.
    pub auth: AwsAuth,
}

/// Delivery into an Amazon Kinesis Data Firehose delivery stream.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseTarget {
    /// ARN of the Firehose delivery stream, e.g.
    /// `arn:aws:firehose:us-east-2:123456789012:deliverystream/mystream`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^arn:"))]
    pub delivery_stream_arn: String,
    /// How ngrok authenticates to AWS: exactly one of `role` or `creds`.
    pub auth: AwsAuth,
}

/// Delivery into an Amazon CloudWatch Logs log group.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudwatchLogsTarget {
    /// ARN of the log group, e.g. `arn:aws:logs:us-east-2:123456789012:log-group:ngrok`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^arn:"))]
    pub log_group_arn: String,
    /// How ngrok authenticates to AWS: exactly one of `role` or `creds`.
    pub auth: AwsAuth,
}

/// How ngrok authenticates to AWS. Exactly one variant (`oneOf`, and a CEL rule with a
/// readable message where the server has CEL).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.role) != has(self.creds)",
    "message": "exactly one AWS auth is required: role (an IAM role ngrok assumes) or creds (access keys from Secrets)",
}]))]
pub enum AwsAuth {
    /// An IAM role ngrok assumes on your behalf (recommended: no long-lived keys).
    Role(AwsRole),
    /// Long-term access keys, read from Secrets in this namespace.
    Creds(AwsCreds),
}

/// An IAM role for ngrok to assume.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsRole {
    /// ARN of the role, e.g. `arn:aws:iam::123456789012:role/ngrok-events`.
    #[schemars(length(min = 1, max = 2048), regex(pattern = "^arn:"))]
    pub role_arn: String,
}

/// AWS access keys, each a reference to a Secret key in this namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCreds {
    /// The Secret key holding the access key id (`AKIA…`).
    pub access_key_id_ref: SecretKeyRef,
    /// The Secret key holding the secret access key.
    pub secret_access_key_ref: SecretKeyRef,
}

/// Delivery into Datadog logs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatadogTarget {
    /// The Secret key holding the Datadog API key.
    pub api_key_ref: SecretKeyRef,
    /// Datadog site to send to, e.g. `datadoghq.com` or `datadoghq.eu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub ddsite: Option<String>,
    /// Tags sent with every event, e.g. `env:prod,team:platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub ddtags: Option<String>,
    /// Service name sent with every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub service: Option<String>,
}

/// Delivery into Azure Monitor through the Logs Ingestion API.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureLogsIngestionTarget {
    /// Microsoft Entra tenant id of the Azure account.
    #[schemars(length(min = 1, max = 64))]
    pub tenant_id: String,
    /// Client (application) id of the app registration ngrok signs in as.
    #[schemars(length(min = 1, max = 64))]
    pub client_id: String,
    /// The Secret key holding that application's client secret.
    pub client_secret_ref: SecretKeyRef,
    /// Logs ingestion URI of the data collection endpoint,
    /// e.g. `https://my-dce-abcd.eastus-1.ingest.monitor.azure.com`.
    #[schemars(length(min = 1, max = 2048))]
    pub logs_ingestion_uri: String,
    /// Immutable id of the data collection rule, e.g. `dcr-0123456789abcdef0123456789abcdef`.
    #[schemars(length(min = 1, max = 255))]
    pub data_collection_rule_id: String,
    /// Stream in the data collection rule to write to, e.g. `Custom-NgrokEvents`.
    #[schemars(length(min = 1, max = 255))]
    pub data_collection_stream_name: String,
}

/// What the operator observed and did. Written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDestinationStatus {
    /// What every resource mirroring an ngrok object records: id, conditions, pending create.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Which target the destination has (`kinesis`, `firehose`, …), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A keyed hash (HMAC-SHA256 under the account's API key) of the secret values last sent to
    /// ngrok, never the values: ngrok does not return secrets, so this tells when to send them
    /// again, and the key stops anyone who can read this status from guessing them offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_hash: Option<String>,
}
