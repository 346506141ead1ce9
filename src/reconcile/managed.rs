//! What the engine needs to know of a kind: [`Managed`] (where its state lives, what a request
//! depends on, the ngrok calls), and what every status and every ngrok object has in common.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::Store;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Memory};
use crate::accounts::{Account, Snapshot};
use crate::crd::{
    CommonStatus, DeletionPolicy, EventDestinationStatus, EventSubscriptionStatus, SecretKeyRef,
};
use crate::drift::{FieldDifference, SecretState};
use crate::error::Result;

/// A kind of resource that mirrors one kind of ngrok object. The engine does the rest; each
/// kind's module (`destination.rs`, `subscription.rs`) says what differs.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: ManagedStatus;
    /// The object as ngrok returns it.
    type Remote: RemoteObject + Clone;
    /// The body of a create.
    type Desired: Send + Sync;
    /// The body of an update: only what differs.
    type Update: Send + Sync;

    /// The kind, as a metrics label and in messages.
    const KIND: &'static str;
    /// How messages name the ngrok object: `destination`, `subscription`.
    const NOUN: &'static str;
    /// How ngrok's ids of this kind begin: `ed_`, `esb_`.
    const ID_PREFIX: &'static str;

    fn status(&self) -> Option<&Self::Status>;
    fn api_key_ref(&self) -> Option<&SecretKeyRef>;
    /// `spec.deletionPolicy`: `None` leaves it to the namespace's and the operator's defaults.
    fn deletion_policy(&self) -> Option<DeletionPolicy>;
    /// Every Secret key the resource reads (a change to one of them triggers a reconcile).
    fn secret_refs(&self) -> Vec<&SecretKeyRef>;
    fn memory(ctx: &Context) -> &Memory<Self>;
    fn store(ctx: &Context) -> &Store<Self>;
    /// Status fields derived from the spec alone, for `kubectl get`.
    fn describe(&self, status: &mut Self::Status);

    /// Reads what the request depends on besides the spec (secret values, the ids of
    /// referenced destinations) and builds the request.
    fn prepare(
        &self,
        ctx: &Context,
        account: &Account,
        secrets_api: &Api<KubeSecret>,
    ) -> impl Future<Output = Result<Prepared<Self::Desired>>> + Send;
    /// Records in the status that `prepared` was sent.
    fn record_inputs(status: &mut Self::Status, prepared: &Prepared<Self::Desired>);
    /// The inputs hash of what was last sent, if known.
    fn recorded_inputs(status: &Self::Status) -> Option<String>;
    /// Forgets what was sent, so that the next comparison sends everything that matters.
    fn forget_inputs(status: &mut Self::Status);

    fn create(
        account: &Account,
        desired: &Self::Desired,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send;
    fn get(
        account: &Account,
        id: &str,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send;
    fn update(
        account: &Account,
        id: &str,
        update: &Self::Update,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send;
    fn delete(account: &Account, id: &str) -> impl Future<Output = ngrok_api::Result<()>> + Send;
    fn listing(
        account: &Account,
        after: Option<Instant>,
    ) -> impl Future<Output = ngrok_api::Result<Arc<Snapshot<Self::Remote>>>> + Send;

    /// What makes `remote` match `desired` (`None` when nothing differs), and its field names.
    fn changes(
        desired: &Self::Desired,
        remote: &Self::Remote,
        resend_secrets: bool,
    ) -> Option<(Self::Update, String)>;
    /// What a listing shows of `desired` (see `desired::fingerprint`).
    fn fingerprint(desired: &Self::Desired) -> String;
    fn observed_fingerprint(remote: &Self::Remote) -> String;
    /// Observe mode's report: each field a managing reconcile would change.
    fn drift(
        desired: &Self::Desired,
        remote: &Self::Remote,
        secrets: SecretState,
    ) -> Vec<FieldDifference>;

    /// Refuses `update` of `remote` when it would drop what ngrok holds outside what the spec
    /// names (see `desired::subscription::unnamed_remote_fields`).
    fn check_update(
        _desired: &Self::Desired,
        _remote: &Self::Remote,
        _update: &Self::Update,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether the ngrok object may be deleted now (a destination still in use may not).
    fn check_deletable(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
}

/// A request and the inputs it was built from.
pub struct Prepared<D> {
    pub desired: D,
    /// Hash of everything besides the spec that the request depends on.
    pub inputs_hash: String,
    /// Whether the request carries secrets (ngrok never shows them, so they are sent again
    /// whenever `inputs_hash` changes).
    pub has_secrets: bool,
}

/// A kind's status: the fields every kind has ([`CommonStatus`], flattened into it) and its own.
pub trait ManagedStatus: Clone + Default + PartialEq + Serialize + Send + Sync + 'static {
    fn common(&self) -> &CommonStatus;
    fn common_mut(&mut self) -> &mut CommonStatus;

    /// ngrok's id of the object, once known.
    fn id(&self) -> Option<&String> {
        self.common().id.as_ref()
    }
    fn conditions(&self) -> &[Condition] {
        &self.common().conditions
    }
    fn observed_generation(&self) -> Option<i64> {
        self.common().observed_generation
    }
}

impl ManagedStatus for EventDestinationStatus {
    fn common(&self) -> &CommonStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonStatus {
        &mut self.common
    }
}

impl ManagedStatus for EventSubscriptionStatus {
    fn common(&self) -> &CommonStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonStatus {
        &mut self.common
    }
}

/// What every ngrok object has.
pub trait RemoteObject: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn uri(&self) -> &str;
    fn created_at(&self) -> &str;
}

impl RemoteObject for ngrok_api::types::EventDestination {
    fn id(&self) -> &str {
        &self.id
    }
    fn uri(&self) -> &str {
        &self.uri
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

impl RemoteObject for ngrok_api::types::EventSubscription {
    fn id(&self) -> &str {
        &self.id
    }
    fn uri(&self) -> &str {
        &self.uri
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

/// Records `remote`'s id, URI and creation time in `status` (or clears them).
pub fn record_remote(status: &mut CommonStatus, remote: Option<&dyn RemoteObject>) {
    status.id = remote.map(|r| r.id().to_string());
    status.uri = remote.map(|r| r.uri().to_string());
    status.created_at = remote.map(|r| r.created_at().to_string());
}
