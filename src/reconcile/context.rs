//! What every reconcile shares ([`Context`]): the caches, the per-kind memories, the
//! accounts, the lease fence, and the operator's policies (the operator-wide key, adoption,
//! default deletion policy).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret as KubeSecret};
use kube::ResourceExt;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use super::memory::Memory;
use super::{Managed, plan};
use crate::accounts::{Account, Accounts};
use crate::crd::{
    DEFAULT_DELETION_POLICY_ANNOTATION, DeletionPolicy, EventDestination, EventSubscription,
};
use crate::error::{Error, Result};
use crate::leader::LeaseFence;
use crate::metrics::Metrics;
use crate::secrets;

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub accounts: Accounts,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub drift_interval: Duration,
    /// Only Secrets labelled `events.ngrok.io/credentials=true` may be read (see
    /// [`crate::secrets`]).
    pub require_credentials_label: bool,
    /// What the engine keeps per kind ([`KindState`]): one field per kind, and nothing else
    /// of a kind's in this struct.
    pub destinations: KindState<EventDestination>,
    pub subscriptions: KindState<EventSubscription>,
    /// The namespaces that may use the operator-wide key (those matching
    /// `--operator-key-namespace-selector`); every namespace when `None`.
    pub operator_key_namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// The namespaces that may adopt with the operator-wide key (those matching
    /// `--adoption-namespace-selector`); none when `None`.
    pub adoption_namespaces: Option<SelectedNamespaces>,
    /// Leader election's fence (see [`Context::may_write`]); `None` without leader election.
    pub fence: Option<LeaseFence>,
    /// `--default-deletion-policy`: the policy of resources that set none, in namespaces
    /// without the annotation `events.ngrok.io/default-deletion-policy`.
    pub default_deletion_policy: DeletionPolicy,
    /// Every namespace, with that annotation alone (see `controller::namespace_defaults`);
    /// `None` when the operator watches one namespace (a namespaced Role cannot read it).
    pub namespace_defaults: Option<Store<PartialObjectMeta<Namespace>>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        accounts: Accounts,
        recorder: Recorder,
        metrics: Metrics,
        drift_interval: Duration,
        destinations: Store<EventDestination>,
        subscriptions: Store<EventSubscription>,
    ) -> Self {
        Self {
            client,
            accounts,
            recorder,
            metrics,
            drift_interval,
            // The safe default; `--require-credentials-label=false` turns it off.
            require_credentials_label: true,
            destinations: KindState::new(destinations),
            subscriptions: KindState::new(subscriptions),
            operator_key_namespaces: None,
            adoption_namespaces: None,
            fence: None,
            default_deletion_policy: DeletionPolicy::Delete,
            namespace_defaults: None,
        }
    }

    /// The deletion policy that applies to `resource` ([`plan::deletion::policy_in_effect`]).
    pub fn deletion_policy_of<K: Managed>(&self, resource: &K) -> plan::deletion::PolicyInEffect {
        let namespace = resource.namespace().unwrap_or_default();
        let annotation = self.namespace_defaults.as_ref().and_then(|namespaces| {
            namespaces
                .get(&ObjectRef::new(&namespace))?
                .metadata
                .annotations
                .as_ref()?
                .get(DEFAULT_DELETION_POLICY_ANNOTATION)
                .cloned()
        });
        plan::deletion::policy_in_effect(
            resource.deletion_policy(),
            annotation.as_deref(),
            self.default_deletion_policy,
        )
    }

    /// Whether this replica may write (to ngrok or to Kubernetes): it surely holds the leader
    /// lease, or there is no leader election.
    pub fn may_write(&self) -> bool {
        self.fence.as_ref().is_none_or(LeaseFence::is_held)
    }

    /// Runs `work` until it ends or the fence closes, whichever comes first: work that
    /// outlives the lease is cut off where it stands, as if the process were killed (which the
    /// engine is safe against), so that no request starts after the fence; one already
    /// delivered to the API server cannot be called back.
    pub async fn fenced<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match &self.fence {
            None => work.await,
            Some(fence) => tokio::select! {
                biased;
                result = work => result,
                () = fence.lost() => Err(Error::NotLeader),
            },
        }
    }

    /// Whether resources of `namespace` may use the operator-wide API key.
    pub fn operator_key_allowed(&self, namespace: &str) -> bool {
        self.operator_key_namespaces
            .as_ref()
            .is_none_or(|selected| selected.get(&ObjectRef::new(namespace)).is_some())
    }

    /// Whether resources of `namespace` may adopt with the operator-wide API key.
    pub fn adoption_allowed(&self, namespace: &str) -> bool {
        self.adoption_namespaces
            .as_ref()
            .is_some_and(|selected| selected.contains(namespace))
    }

    /// The account a resource uses: its own API key from `spec.apiKeyRef`, or the operator's.
    pub async fn account_for<K: Managed>(
        &self,
        resource: &K,
        secrets_api: &Api<KubeSecret>,
    ) -> Result<Arc<Account>> {
        let key = match resource.api_key_ref() {
            Some(reference) => secrets::api_key_from(
                secrets::resolve(
                    secrets_api,
                    &[(reference, secrets::Shape::NgrokApiKey)],
                    self.require_credentials_label,
                )
                .await?
                .get(reference)?,
            ),
            None => self.accounts.operator_key().ok_or(Error::ApiKeyMissing)?,
        };
        Ok(self.accounts.get(&key)?)
    }

    /// Forgets every refusal remembered for resources that use the operator-wide key: after
    /// that key changed, ngrok may answer differently.
    pub fn forget_operator_key_refusals(&self) {
        self.destinations.forget_operator_key_refusals();
        self.subscriptions.forget_operator_key_refusals();
    }
}

/// What the engine keeps of one kind, as kaniop's `Context<K>` does: the controller's cache,
/// what this process remembers of each resource, and the kind's work slots.
pub struct KindState<K: Managed> {
    /// The controller's cache: which ids are taken, which creates pending, which
    /// destinations a subscription can use.
    pub store: Store<K>,
    pub memory: Memory<K>,
    /// The kind's work slots, shared fairly across namespaces ([`crate::fairness`]);
    /// unbounded until the controller sets them.
    pub gate: crate::fairness::Gate,
}

impl<K: Managed> KindState<K> {
    pub fn new(store: Store<K>) -> Self {
        Self {
            store,
            memory: Memory::default(),
            gate: crate::fairness::Gate::new(0, Default::default()),
        }
    }

    fn forget_operator_key_refusals(&self) {
        self.memory
            .forget_refusals_where(|r| self.store.get(r).is_some_and(uses_operator_key));
    }
}

/// The namespaces a label selector of the operator's selects, as a watch keeps them.
#[derive(Clone)]
pub struct SelectedNamespaces {
    /// The selector, as given on the command line (messages tell tenants what it asks for).
    pub selector: String,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
}

impl SelectedNamespaces {
    pub fn contains(&self, namespace: &str) -> bool {
        self.namespaces.get(&ObjectRef::new(namespace)).is_some()
    }
}

fn uses_operator_key<K: Managed>(resource: Arc<K>) -> bool {
    resource.api_key_ref().is_none()
}
