//! Wire types of ngrok's API, field for field as in ngrok's OpenAPI spec: one module per kind
//! of object ([`destination`], [`subscription`]), the target of a destination on its own
//! ([`target`]), and here what several share.
//!
//! Three shapes per kind, because the API has three: the body of a create, the body of an
//! update (every field optional and *omitted* when unset, never `null`), and the object as
//! ngrok returns it, which implements [`Kind`](crate::Kind) and so names the other two. "Exactly
//! one target" and "exactly one of role/creds" are enums, so an invalid combination cannot be
//! built; on the wire they are objects with one key set, and the deserializers accept the
//! `null` siblings a response carries (`"firehose": null, ...`).
//!
//! Secret fields (`aws_secret_access_key`, `api_key`, `client_secret`) are
//! [`Secret`](crate::Secret)s and are `Option`al: a request always sets them, but ngrok
//! withholds them in responses (`null`). Compare desired and observed targets with
//! [`EventTarget::without_secrets`].

pub mod destination;
pub mod subscription;
pub mod target;

use serde::{Deserialize, Deserializer, Serialize};

pub use destination::{
    EventDestination, EventDestinationCreate, EventDestinationUpdate, FORMAT_JSON,
};
pub use subscription::{
    EventSource, EventSourceReplace, EventSubscription, EventSubscriptionCreate,
    EventSubscriptionUpdate,
};
pub use target::{
    AwsAuth, AwsCredentials, AwsRole, EventTarget, EventTargetAzureLogsIngestion,
    EventTargetCloudwatchLogs, EventTargetDatadog, EventTargetFirehose, EventTargetKinesis,
};

/// A reference to another API resource (`Ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The resource's id.
    pub id: String,
    /// URI of the resource in the API; empty when unset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
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

    #[test]
    fn an_api_key_never_keeps_its_token() {
        let key: ApiKey = serde_json::from_value(json!({
            "id": "ak_1", "token": "never-kept", "description": null
        }))
        .unwrap();
        assert_eq!(key.description, "");
        assert!(!format!("{key:?}").contains("never-kept"));
    }
}
