//! Wire types of ngrok's `/event_destinations` and `/event_subscriptions` APIs, field for
//! field as in ngrok's OpenAPI spec.
//!
//! Three shapes per resource, because the API has three: the body of a create, the body of an
//! update (every field optional and *omitted* when unset, never `null`), and the resource as
//! ngrok returns it. "Exactly one target" and "exactly one of role/creds" are enums, so an
//! invalid combination cannot be built; on the wire they are objects with one key set, and the
//! deserializers accept the `null` siblings a response carries (`"firehose": null, ...`).
//!
//! Secret fields (`aws_secret_access_key`, `api_key`, `client_secret`) are [`Secret`]s and are
//! `Option`al: a request always sets them, but ngrok withholds them in responses (`null`).
//! Compare desired and observed targets with [`EventTarget::without_secrets`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::secret::Secret;
use crate::unmodeled::UnmodeledFields;

/// The one `format` ngrok accepts today. The docs spell it "JSON"; the wire value is `json`.
pub const FORMAT_JSON: &str = "json";

/// Body of `POST /event_destinations` (`EventDestinationCreate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestinationCreate {
    /// Machine-readable data, at most 4096 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Human-readable description, at most 255 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Serialization format of events; always sent (see [`FORMAT_JSON`]).
    pub format: String,
    /// Where and how events are delivered.
    pub target: EventTarget,
}

impl EventDestinationCreate {
    /// A destination for `target` with format `json` and no metadata or description.
    pub fn new(target: EventTarget) -> Self {
        Self {
            metadata: None,
            description: None,
            format: FORMAT_JSON.to_owned(),
            target,
        }
    }
}

/// Body of `PATCH /event_destinations/{id}` (`EventDestinationUpdate`).
///
/// Only the fields that are `Some` are sent. The spec also lists `id` here; the client puts
/// the id in the path only, as the docs' example request does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestinationUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Replaces the whole target, secrets included: ngrok cannot merge into withheld fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<EventTarget>,
}

impl EventDestinationUpdate {
    /// True when the update would change nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An event destination as ngrok returns it (`EventDestination`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestination {
    /// `ed_…`
    pub id: String,
    /// URI of this resource in the API; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
    /// Creation time, RFC 3339; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    /// Empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: String,
    /// Empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub format: String,
    /// Secret fields are `None`: ngrok does not return them.
    pub target: EventTarget,
}

/// One page of `GET /event_destinations` (`EventDestinationList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestinationList {
    #[serde(default)]
    pub event_destinations: Vec<EventDestination>,
    #[serde(default)]
    pub uri: String,
    /// Absolute URI of the next (older) page; `None` on the last page.
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

/// Body of `POST /event_subscriptions` (`EventSubscriptionCreate`).
///
/// `sources` and `destination_ids` are always sent, empty lists included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSubscriptionCreate {
    /// Machine-readable data, at most 4096 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// Human-readable description, at most 255 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The event types the subscription triggers on.
    pub sources: Vec<EventSourceReplace>,
    /// The `ed_…` ids of the destinations events are sent to.
    pub destination_ids: Vec<String>,
}

impl EventSubscriptionCreate {
    /// A subscription of `sources` to `destination_ids`, with no metadata or description.
    pub fn new(sources: Vec<EventSourceReplace>, destination_ids: Vec<String>) -> Self {
        Self {
            metadata: None,
            description: None,
            sources,
            destination_ids,
        }
    }
}

/// Body of `PATCH /event_subscriptions/{id}` (`EventSubscriptionUpdate`).
///
/// Only the fields that are `Some` are sent; `sources` and `destination_ids` replace the whole
/// list. The spec also lists `id` here; the client puts the id in the path only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSubscriptionUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<EventSourceReplace>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_ids: Option<Vec<String>>,
}

impl EventSubscriptionUpdate {
    /// True when the update would change nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An event type as a request names it (`EventSourceReplace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSourceReplace {
    /// The event type, e.g. `ip_policy_created.v0`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The fields to record for each event of a traffic event type (`http_request_complete.v0`,
    /// `tcp_connection_closed.v0`, …), e.g. `conn.client_ip`. Missing from ngrok's published
    /// OpenAPI spec, but sent by ngrok's own Terraform provider (`sources[].fields`) and
    /// named by ngrok's error catalogue (`ERR_NGROK_5400`…`5405`); not sent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// A boolean CEL expression over the event (`ev.…`): only the events for which it is true
    /// are sent. Traffic event types only (`http_request_complete.v0`,
    /// `tcp_connection_closed.v0`); ngrok refuses it on others (`ERR_NGROK_5402`). Missing from
    /// ngrok's published OpenAPI spec, but documented by ngrok's events docs and sent by its
    /// Terraform provider (`sources[].filter`). Not sent when `None` or empty (no filter).
    #[serde(default, skip_serializing_if = "no_filter")]
    pub filter: Option<String>,
}

/// An unset or empty filter is not sent: ngrok's Terraform provider never sends an empty one.
fn no_filter(filter: &Option<String>) -> bool {
    filter.as_deref().is_none_or(str::is_empty)
}

impl EventSourceReplace {
    /// A source of event type `type_`, without fields or filter.
    pub fn new(type_: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            fields: Vec::new(),
            filter: None,
        }
    }
}

/// An event subscription as ngrok returns it (`EventSubscription`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSubscription {
    /// `esb_…`
    pub id: String,
    /// URI of this resource in the API; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
    /// Creation time, RFC 3339; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    /// Empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: String,
    /// Empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    /// The event types the subscription triggers on; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: Vec<EventSource>,
    /// The destinations events are sent to; empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub destinations: Vec<Ref>,
}

impl EventSubscription {
    /// The ids of [`destinations`](Self::destinations), in ngrok's order.
    pub fn destination_ids(&self) -> Vec<String> {
        self.destinations.iter().map(|d| d.id.clone()).collect()
    }

    /// The event types of [`sources`](Self::sources), in ngrok's order.
    pub fn source_types(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.type_.clone()).collect()
    }
}

/// An event type of a subscription as ngrok returns it (`EventSource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    /// The event type, e.g. `ip_policy_created.v0`.
    #[serde(rename = "type")]
    pub type_: String,
    /// URI of the source in the API; empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
    /// The fields recorded for each event (see [`EventSourceReplace::fields`]); empty when
    /// `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fields: Vec<String>,
    /// The filter (see [`EventSourceReplace::filter`]); empty when `null` or missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub filter: String,
    /// Whatever else ngrok returns for the source, which this client does not model (bounded).
    /// A write of `sources` drops it: see [`UnmodeledFields`].
    #[serde(flatten, default)]
    pub unmodeled: UnmodeledFields,
}

impl EventSource {
    /// A source of event type `type_` as ngrok would return it: no uri, fields or filter.
    pub fn new(type_: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            uri: String::new(),
            fields: Vec::new(),
            filter: String::new(),
            unmodeled: UnmodeledFields::default(),
        }
    }
}

/// A reference to another API resource (`Ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The resource's id.
    pub id: String,
    /// URI of the resource in the API; empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
}

/// One page of `GET /event_subscriptions` (`EventSubscriptionList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSubscriptionList {
    #[serde(default)]
    pub event_subscriptions: Vec<EventSubscription>,
    #[serde(default)]
    pub uri: String,
    /// Absolute URI of the next (older) page; `None` on the last page.
    #[serde(default)]
    pub next_page_uri: Option<String>,
}

/// An API key of the account as ngrok lists it (`APIKey`). ngrok returns the key itself
/// (`token`) only when the key is created; this type has no field for it, so a token is never
/// kept even if one were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `ak_…`
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    /// The user or bot that owns the key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub owner_id: String,
}

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

/// Reads `null` as the type's default, for strings ngrok may return as `null` or `""`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinesis_with_creds() -> EventTarget {
        EventTarget::Kinesis(EventTargetKinesis {
            auth: AwsAuth::Creds(AwsCredentials {
                aws_access_key_id: "AKIA".into(),
                aws_secret_access_key: Some(Secret::new("s3cr3t")),
            }),
            stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
        })
    }

    #[test]
    fn create_serializes_exactly_one_target_and_no_nulls() {
        let mut create = EventDestinationCreate::new(kinesis_with_creds());
        create.description = Some("d".into());
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            json!({
                "description": "d",
                "format": "json",
                "target": {"kinesis": {
                    "auth": {"creds": {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s3cr3t"}},
                    "stream_arn": "arn:aws:kinesis:us-east-2:1:stream/s"
                }}
            })
        );
    }

    #[test]
    fn update_sends_only_set_fields() {
        let update = EventDestinationUpdate {
            description: Some("new".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"description":"new"}"#
        );
        assert!(EventDestinationUpdate::default().is_empty());
        assert_eq!(
            serde_json::to_string(&EventDestinationUpdate::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn response_with_null_siblings_and_withheld_secret_decodes() {
        let destination: EventDestination = serde_json::from_value(json!({
            "id": "ed_1", "uri": "u", "created_at": "2024-08-02T07:15:39Z",
            "metadata": "", "description": null, "format": "json",
            "target": {
                "firehose": null, "cloudwatch_logs": null, "datadog": null, "azure_logs_ingestion": null,
                "kinesis": {"auth": {"role": null, "creds": {"aws_access_key_id": "AKIA", "aws_secret_access_key": null}},
                            "stream_arn": "arn:aws:kinesis:us-east-2:1:stream/s"}
            }
        }))
        .unwrap();
        assert_eq!(destination.description, "");
        assert_eq!(destination.target, kinesis_with_creds().without_secrets());
        assert_ne!(destination.target, kinesis_with_creds());
    }

    #[test]
    fn subscription_create_always_sends_sources_and_destination_ids() {
        let create = EventSubscriptionCreate::new(Vec::new(), Vec::new());
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            json!({"sources": [], "destination_ids": []})
        );
        let mut create = EventSubscriptionCreate::new(
            vec![EventSourceReplace::new("ip_policy_created.v0")],
            vec!["ed_1".into()],
        );
        create.metadata = Some("m".into());
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            json!({"metadata": "m", "sources": [{"type": "ip_policy_created.v0"}], "destination_ids": ["ed_1"]})
        );
    }

    #[test]
    fn subscription_update_sends_only_set_fields() {
        let update = EventSubscriptionUpdate {
            destination_ids: Some(vec!["ed_2".into()]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"destination_ids":["ed_2"]}"#
        );
        assert!(!update.is_empty());
        // An empty list is a value: it clears the list, so it is sent.
        let clear = EventSubscriptionUpdate {
            sources: Some(Vec::new()),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&clear).unwrap(), r#"{"sources":[]}"#);
        assert!(EventSubscriptionUpdate::default().is_empty());
        assert_eq!(
            serde_json::to_string(&EventSubscriptionUpdate::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn source_filters_are_sent_when_set_and_unknown_source_fields_are_kept() {
        let mut source = EventSourceReplace::new("http_request_complete.v0");
        for empty in [None, Some(String::new())] {
            source.filter = empty;
            assert_eq!(
                serde_json::to_value(&source).unwrap(),
                json!({"type": "http_request_complete.v0"})
            );
        }
        source.filter = Some("ev.conn.server_port == 80".into());
        assert_eq!(
            serde_json::to_value(&source).unwrap(),
            json!({"type": "http_request_complete.v0", "filter": "ev.conn.server_port == 80"})
        );
        let read: EventSource = serde_json::from_value(json!({
            "type": "http_request_complete.v0", "uri": "u", "fields": null,
            "filter": "ev.conn.server_port == 80", "sampling_rate": 0.5, "future": null
        }))
        .unwrap();
        assert_eq!(read.filter, "ev.conn.server_port == 80");
        assert!(read.fields.is_empty());
        assert_eq!(
            read.unmodeled.iter().collect::<Vec<_>>(),
            [("sampling_rate", &json!(0.5))]
        );
        let plain: EventSource =
            serde_json::from_value(json!({"type": "ip_policy_created.v0", "filter": null}))
                .unwrap();
        assert_eq!(plain, EventSource::new("ip_policy_created.v0"));
    }

    #[test]
    fn subscription_response_with_nulls_and_missing_fields_decodes() {
        let subscription: EventSubscription = serde_json::from_value(json!({
            "id": "esb_1", "uri": "u", "created_at": "2024-08-02T07:15:39Z",
            "metadata": null, "description": null,
            "sources": [{"type": "ip_policy_created.v0", "uri": null}, {"type": "ip_policy_deleted.v0"}],
            "destinations": [{"id": "ed_1", "uri": "https://api.ngrok.com/event_destinations/ed_1"}, {"id": "ed_2"}]
        }))
        .unwrap();
        assert_eq!(
            (
                subscription.metadata.as_str(),
                subscription.description.as_str()
            ),
            ("", "")
        );
        assert_eq!(
            subscription.source_types(),
            ["ip_policy_created.v0", "ip_policy_deleted.v0"]
        );
        assert_eq!(subscription.destination_ids(), ["ed_1", "ed_2"]);
        assert_eq!(subscription.sources[1].uri, "");

        let bare: EventSubscription = serde_json::from_value(json!({
            "id": "esb_2", "uri": "u", "created_at": "t", "sources": null
        }))
        .unwrap();
        assert!(bare.sources.is_empty() && bare.destinations.is_empty());

        let page: EventSubscriptionList = serde_json::from_value(
            json!({"event_subscriptions": [], "uri": "u", "next_page_uri": null}),
        )
        .unwrap();
        assert_eq!(page.next_page_uri, None);
    }

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

    #[test]
    fn null_uri_and_created_at_read_as_empty() {
        let destination: EventDestination = serde_json::from_value(json!({
            "id": "ed_1", "uri": null, "created_at": null, "description": null,
            "target": {"datadog": {"api_key": null}}
        }))
        .unwrap();
        assert_eq!(
            (destination.uri.as_str(), destination.created_at.as_str()),
            ("", "")
        );
        let key: ApiKey = serde_json::from_value(json!({
            "id": "ak_1", "token": "never-kept", "description": null
        }))
        .unwrap();
        assert!(!format!("{key:?}").contains("never-kept"));
    }
}
