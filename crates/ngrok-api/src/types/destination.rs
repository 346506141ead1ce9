//! Event destinations (`/event_destinations`): where ngrok sends events. The target itself,
//! the one part with secrets and with a shape per service, is in [`super::target`].

use serde::{Deserialize, Serialize};

use super::{EventTarget, null_as_default};
use crate::kind::Kind;

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

impl Kind for EventDestination {
    type Create = EventDestinationCreate;
    type Update = EventDestinationUpdate;

    const COLLECTION: &'static str = "event_destinations";
    const NOUN: &'static str = "destination";
    const ID_PREFIX: &'static str = "ed_";

    fn id_of(destination: &Self) -> &str {
        &destination.id
    }
    fn uri_of(destination: &Self) -> &str {
        &destination.uri
    }
    fn created_at_of(destination: &Self) -> &str {
        &destination.created_at
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::secret::Secret;
    use crate::types::{AwsAuth, AwsCredentials, EventTargetKinesis};

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
    }
}
