//! The custom resources users write. Types only: no I/O happens here.
//!
//! Validation lives in the generated OpenAPI schema so the API server rejects bad objects at
//! `kubectl apply` time. The structural rules (`oneOf` + `required`, `maxLength`, `enum`,
//! `pattern`) hold on every supported version. The cross-field and byte-length rules are also
//! CEL rules (`x-kubernetes-validations`), which servers from 1.25 check and older ones drop;
//! kubectl's client-side validation against a server older than 1.23 refuses a CRD that carries
//! them, so the chart cuts them out there and `deploy/` has none. ngrok's limits are in bytes
//! while `maxLength` counts characters, so the operator checks the bytes again before it calls
//! ngrok (and stalls the resource), for the servers without CEL. Each rule has a `rule` and a
//! `message` only: `reason` and `fieldPath` came in 1.28, and a 1.25 to 1.27 server's strict
//! field validation (kubectl's default) would refuse a CRD that has them. Every rule sits on
//! the field or object it checks, so the server names that field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod destination;
mod subscription;

pub use destination::*;
pub use subscription::*;

/// API group of every resource of this operator.
pub const GROUP: &str = "events.ngrok.io";

/// Annotation: adopt an existing destination (`ed_…`) or subscription (`esb_…`) by id instead
/// of creating one.
pub const ADOPT_ID_ANNOTATION: &str = "events.ngrok.io/adopt-id";
/// Annotation: `"true"` stops every write to ngrok for this resource.
pub const PAUSED_ANNOTATION: &str = "events.ngrok.io/paused";
/// Annotation: `observe` reads the ngrok object and reports in `status.drift` what managing it
/// would change, writing nothing to ngrok; `manage` (the default) manages it.
pub const MANAGEMENT_ANNOTATION: &str = "events.ngrok.io/management";
/// Label: `"true"` makes a Secret usable by this operator's resources (see `secrets`).
pub const CREDENTIALS_LABEL: &str = "events.ngrok.io/credentials";
/// Annotation: this resource's drift-check interval (`30s`, `5m`), instead of `--drift-interval`.
pub const DRIFT_INTERVAL_ANNOTATION: &str = "events.ngrok.io/drift-interval";
/// Namespace annotation: the deletion policy (`Delete` or `Retain`) of the namespace's
/// resources that set no `spec.deletionPolicy` of their own.
pub const DEFAULT_DELETION_POLICY_ANNOTATION: &str = "events.ngrok.io/default-deletion-policy";

/// Byte limits of ngrok's API, shared with the operator's own checks.
pub const MAX_DESCRIPTION_BYTES: usize = 255;
pub const MAX_METADATA_BYTES: usize = 4096;
/// A subscription's limits, in characters (ngrok's spec for `EventSubscription`).
pub const MAX_SUBSCRIPTION_DESCRIPTION_CHARS: usize = 255;
pub const MAX_SUBSCRIPTION_METADATA_CHARS: usize = 4096;
/// Longest `sources[].filter` sent, in bytes. ngrok documents no limit; this one (the
/// metadata's) keeps a tenant's expression from growing requests and status without bound.
pub const MAX_SOURCE_FILTER_BYTES: usize = 4096;

/// What happens to the object in ngrok when the resource is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

/// The schema of an optional deletion policy: schemars lists `null` among an optional enum's
/// values, which `kubectl` (client-side validation) refuses in a CRD; unset is simply absent.
pub(crate) fn optional_deletion_policy(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["Delete", "Retain"]})
}

impl std::str::FromStr for DeletionPolicy {
    type Err = String;

    /// Exactly `Delete` or `Retain`, as in `spec.deletionPolicy`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Delete" => Ok(Self::Delete),
            "Retain" => Ok(Self::Retain),
            _ => Err("a deletion policy is Delete or Retain".into()),
        }
    }
}

impl std::fmt::Display for DeletionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Delete => "Delete",
            Self::Retain => "Retain",
        })
    }
}

/// A key of a Secret in the resource's own namespace. There is deliberately no namespace
/// field: a resource can never read another namespace's Secrets.
#[derive(
    Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as this resource.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A create that was (or may have been) sent to ngrok without its outcome being recorded.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// When the first attempt started (RFC 3339). An object created before this, less a margin
    /// for clock skew, is not the outcome of this create.
    pub started_at: String,
    /// Hash of the object's content without secrets: what the created object looks like in a
    /// listing.
    pub fingerprint: String,
}

/// The status every resource that mirrors one ngrok object has; each kind's status flattens it
/// in beside its own fields, so the generic reconcile reads and writes these in one place.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// ngrok's id of the object (`ed_…`, `esb_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// ngrok's API URI of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// When ngrok created the object (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// Recorded before a create is sent and cleared once the id is known, so that after a crash
    /// or a lost response the operator looks for the object instead of creating a twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
    /// In observe mode (annotation `events.ngrok.io/management: observe`): each field a
    /// managing reconcile would change in ngrok, without secret values. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<crate::drift::FieldDifference>,
    /// Which API key the object was last seen with: 12 hex digits of a hash of the key, never
    /// the key. When the key changes and the object is not in the new key's account, this
    /// tells a move to another account (or a change that cannot be judged) from a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// The deletion policy in effect: `spec.deletionPolicy`, else the namespace's annotation
    /// `events.ngrok.io/default-deletion-policy`, else the operator's `--default-deletion-policy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_deletion_policy")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// Every CRD of the operator, in the order they are installed.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![EventDestination::crd(), subscription::crd()]
}

/// The committed file under `crds/` for each CRD: `(file name, YAML)`.
pub fn files() -> Vec<(String, String)> {
    all()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml::to_string(&crd).expect("a CRD always serializes");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream, as `ngrok-events-operator crd` prints them.
pub fn render_yaml() -> String {
    files()
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect()
}
