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
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::plan::apply::Compare;
use super::{Context, KindState};
use crate::accounts::{Account, Snapshot};
use crate::crd::{
    CommonStatus, DeletionPolicy, EventDestinationStatus, EventSubscriptionStatus, SecretKeyRef,
};
use crate::error::Result;

/// A kind of resource that mirrors one kind of ngrok object. The engine does the rest; each
/// kind's module (`destination.rs`, `subscription.rs`) says what differs.
///
/// How its request compares with the object ngrok holds is [`Compare`], the plan's view of a
/// kind; its `Remote` is the ngrok kind it mirrors, whose create and update bodies are
/// `Desired` and `Update`: the ngrok calls below are written once through it.
pub trait Managed:
    Compare<
        Remote: ngrok_api::Kind<
            Create = <Self as Compare>::Desired,
            Update = <Self as Compare>::Update,
        >,
    > + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: ManagedStatus;

    /// The kind, as a metrics label and in messages.
    const KIND: &'static str;
    /// How messages name the ngrok object: `destination`, `subscription`.
    const NOUN: &'static str = <Self::Remote as ngrok_api::Kind>::NOUN;
    /// How ngrok's ids of this kind begin: `ed_`, `esb_`.
    const ID_PREFIX: &'static str = <Self::Remote as ngrok_api::Kind>::ID_PREFIX;

    fn status(&self) -> Option<&Self::Status>;
    fn api_key_ref(&self) -> Option<&SecretKeyRef>;
    /// `spec.deletionPolicy`: `None` leaves it to the namespace's and the operator's defaults.
    fn deletion_policy(&self) -> Option<DeletionPolicy>;
    /// Every Secret key the resource reads (a change to one of them triggers a reconcile).
    fn secret_refs(&self) -> Vec<&SecretKeyRef>;
    /// Where the engine keeps this kind's cache, memory and work slots.
    fn state(ctx: &Context) -> &KindState<Self>;
    /// Status fields derived from the spec alone, for `kubectl get`.
    fn describe(&self, status: &mut Self::Status);

    /// Reads what the request depends on besides the spec (secret values, the ids of
    /// referenced destinations) and builds the request, or says which other resources it
    /// waits for.
    fn prepare(
        &self,
        ctx: &Context,
        account: &Account,
        secrets_api: &Api<KubeSecret>,
    ) -> impl Future<Output = Result<Inputs<Self::Desired>>> + Send;
    /// Records in the status that `prepared` was sent.
    fn record_inputs(status: &mut Self::Status, prepared: &Prepared<Self::Desired>);
    /// The inputs hash of what was last sent, if known.
    fn recorded_inputs(status: &Self::Status) -> Option<String>;
    /// Forgets what was sent, so that the next comparison sends everything that matters.
    fn forget_inputs(status: &mut Self::Status);

    // The ngrok calls, the same for every kind: the account's client, told the kind.

    /// Creates the object ([`ngrok_api::Client::create`]).
    fn create(
        account: &Account,
        desired: &Self::Desired,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send {
        account.client.create::<Self::Remote>(desired)
    }
    /// Reads the object ([`ngrok_api::Client::get`]).
    fn get(
        account: &Account,
        id: &str,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send {
        account.client.get::<Self::Remote>(id)
    }
    /// Changes what `update` sets ([`ngrok_api::Client::update`]).
    fn update(
        account: &Account,
        id: &str,
        update: &Self::Update,
    ) -> impl Future<Output = ngrok_api::Result<Self::Remote>> + Send {
        account.client.update::<Self::Remote>(id, update)
    }
    /// Deletes the object ([`ngrok_api::Client::delete`]).
    fn delete(account: &Account, id: &str) -> impl Future<Output = ngrok_api::Result<()>> + Send {
        account.client.delete::<Self::Remote>(id)
    }
    /// Every object of the kind in the account, from the account's shared listing
    /// ([`Account::listing`]), started after `after`.
    fn listing(
        account: &Account,
        after: Option<Instant>,
    ) -> impl Future<Output = ngrok_api::Result<Arc<Snapshot<Self::Remote>>>> + Send {
        account.listing::<Self::Remote>(after)
    }

    /// What a listing shows of `desired` (see `desired::fingerprint`).
    fn fingerprint(desired: &Self::Desired) -> String;
    /// Whether the ngrok object may be deleted now (a destination still in use may not).
    fn check_deletable(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }
}

/// What [`Managed::prepare`] read.
pub enum Inputs<D> {
    Prepared(Prepared<D>),
    /// Other resources the request depends on are not ready yet (each named, with why): no
    /// request can be built ([`super::plan::apply::awaiting`] decides what that means).
    Awaiting(Vec<String>),
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

/// What every ngrok object has: any kind the client knows ([`ngrok_api::Kind`]).
pub trait RemoteObject: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn uri(&self) -> &str;
    fn created_at(&self) -> &str;
}

impl<R: ngrok_api::Kind> RemoteObject for R {
    fn id(&self) -> &str {
        R::id_of(self)
    }
    fn uri(&self) -> &str {
        R::uri_of(self)
    }
    fn created_at(&self) -> &str {
        R::created_at_of(self)
    }
}
