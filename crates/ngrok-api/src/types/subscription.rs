//! Event subscriptions (`/event_subscriptions`): which event types go to which destinations.

use serde::{Deserialize, Serialize};

use super::{Ref, null_as_default};
use crate::kind::Kind;
use crate::unmodeled::UnmodeledFields;

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

impl Kind for EventSubscription {
    type Create = EventSubscriptionCreate;
    type Update = EventSubscriptionUpdate;

    const COLLECTION: &'static str = "event_subscriptions";
    const NOUN: &'static str = "subscription";
    const ID_PREFIX: &'static str = "esb_";

    fn id_of(subscription: &Self) -> &str {
        &subscription.id
    }
    fn uri_of(subscription: &Self) -> &str {
        &subscription.uri
    }
    fn created_at_of(subscription: &Self) -> &str {
        &subscription.created_at
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
    }
}
