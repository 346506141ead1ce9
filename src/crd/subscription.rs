//! `EventSubscription`: which events ngrok sends, and to which destinations.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, DeletionPolicy, SecretKeyRef};

/// An ngrok Event Subscription: the events of the listed sources go to every listed destination.
///
/// A destination receives nothing until a subscription names it.
// Each `printcolumn(...)` repeats `type_ = ...`; clippy mistakes that for a duplicate attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "events.ngrok.io",
    version = "v1alpha1",
    kind = "EventSubscription",
    namespaced,
    status = "EventSubscriptionStatus",
    shortname = "nes",
    category = "ngrok",
    derive = "PartialEq",
    doc = "An ngrok Event Subscription managed from Kubernetes.",
    printcolumn(name = "ID", type_ = "string", json_path = ".status.id"),
    printcolumn(name = "Sources", type_ = "integer", json_path = ".status.sourceCount"),
    printcolumn(
        name = "Destinations",
        type_ = "integer",
        json_path = ".status.destinationCount"
    ),
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
pub struct EventSubscriptionSpec {
    /// Human-readable description, shown in the ngrok dashboard. At most 255 characters
    /// (ngrok counts a subscription's limits in characters, a destination's in bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,

    /// Arbitrary machine-readable data, sent to ngrok verbatim (often JSON). At most 4096
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub metadata: Option<String>,

    /// The event types to send, e.g. `http_request_complete.v0`. At least one, each once.
    #[schemars(length(min = 1, max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub sources: Vec<EventSource>,

    /// EventDestinations in this namespace to send the events to, by name. Each is used once it
    /// is Ready; a destination's id is followed when it changes. At least one destination, here
    /// or in `destinationIds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub destination_refs: Vec<DestinationRef>,

    /// ids (`ed_…`) of destinations managed outside Kubernetes. An id that an EventDestination
    /// of another namespace manages is refused. At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "set"), inner(length(max = 67), regex(pattern = r"^ed_[A-Za-z0-9]+$")))]
    pub destination_ids: Vec<String>,

    /// What happens to the ngrok subscription when this resource is deleted: `Delete` removes it
    /// from ngrok, `Retain` leaves it in place. Unset: the namespace's annotation
    /// `events.ngrok.io/default-deletion-policy`, else the operator's default (`Delete` unless
    /// set otherwise); `status.deletionPolicy` shows the policy in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::optional_deletion_policy")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The ngrok API key to use, from a Secret in this namespace; it must belong to the same
    /// ngrok account as every destination. Unset: the operator's own API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_ref: Option<SecretKeyRef>,
}

/// One kind of event, by its versioned name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EventSource {
    /// Event type and version, e.g. `http_request_complete.v0` or `ip_policy_created.v0`.
    #[serde(rename = "type")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[a-z][a-z0-9_]*\.v[0-9]+$")
    )]
    pub type_: String,

    /// For traffic event types (`http_request_complete.v0`, `tcp_connection_closed.v0`, …): the
    /// event fields ngrok records, e.g. `conn.client_ip`, `http.request.method`. Sent to ngrok
    /// as written, compared as a set. ngrok refuses fields on other event types
    /// (`ERR_NGROK_5401`) and fields unknown to the event type (`ERR_NGROK_5403`). At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        extend("x-kubernetes-list-type" = "set"),
        inner(length(min = 1, max = 255))
    )]
    pub fields: Vec<String>,

    /// For `http_request_complete.v0` and `tcp_connection_closed.v0` only: a boolean CEL
    /// expression over the event (`ev.…`); ngrok sends only the events for which it is true,
    /// e.g. `ev.http.response.status_code >= 500`. Sent as written. ngrok refuses a filter on
    /// other event types (`ERR_NGROK_5402`) and an invalid one (`ERR_NGROK_5404`). Unset: no
    /// filter, and a filter set in ngrok (from its dashboard) is not dropped: the resource
    /// stalls until the spec names it. `""`: no filter, and one set in ngrok is removed. At
    /// most 4096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), extend("x-kubernetes-validations" = [{
        "rule": "size(bytes(self)) <= 4096",
        "message": "filter must be at most 4096 bytes in UTF-8",
    }]))]
    pub filter: Option<String>,
}

/// An EventDestination in the subscription's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct DestinationRef {
    /// Name of the EventDestination.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// What the operator observed and did. Written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscriptionStatus {
    /// What every resource mirroring an ngrok object records: id, conditions, pending create.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The destination ids last sent to ngrok: `destinationRefs` resolved, then `destinationIds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_ids: Vec<String>,
    /// How many sources the spec lists, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_count: Option<i32>,
    /// How many destinations the spec lists (refs and ids), for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_count: Option<i32>,
}

/// The CRD, with the one rule derive cannot express: at least one destination, in
/// `destinationRefs` or `destinationIds` (kube's schema rewriter merges the properties of
/// `anyOf` branches, so the rule is added after it ran).
pub(super) fn crd() -> CustomResourceDefinition {
    let mut crd = <EventSubscription as kube::CustomResourceExt>::crd();
    let at_least_one = |field: &str| JSONSchemaProps {
        required: Some(vec![field.to_string()]),
        properties: Some(
            [(
                field.to_string(),
                JSONSchemaProps {
                    min_items: Some(1),
                    ..Default::default()
                },
            )]
            .into(),
        ),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        let spec = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("spec"))
            .expect("the generated schema has a spec");
        spec.any_of = Some(vec![
            at_least_one("destinationRefs"),
            at_least_one("destinationIds"),
        ]);
    }
    crd
}

impl EventSubscriptionSpec {
    /// The referenced EventDestinations' names, in spec order.
    pub fn destination_names(&self) -> impl Iterator<Item = &str> {
        self.destination_refs.iter().map(|r| r.name.as_str())
    }
}
