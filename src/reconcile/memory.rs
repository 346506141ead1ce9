//! What every reconcile shares ([`Context`]), and what the operator remembers about each
//! resource between reconciles: one map per kind ([`Memory`]), one entry per resource, gone
//! with the resource.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use super::managed::RemoteObject;
use super::{Managed, plan};
use crate::accounts::{Account, Accounts};
use crate::crd::{
    DEFAULT_DELETION_POLICY_ANNOTATION, DeletionPolicy, EventDestination, EventSubscription,
};
use crate::error::{Error, Result};
use crate::leader::LeaseFence;
use crate::metrics::Metrics;
use crate::secrets::SecretIndex;

/// The generation and inputs hash of a spec ngrok refused.
pub type RefusedInputs = (Option<i64>, String);

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
    /// The controllers' caches: which ids are taken, which creates pending, which destinations
    /// a subscription can use.
    pub destinations: Store<EventDestination>,
    pub subscriptions: Store<EventSubscription>,
    pub destination_memory: Memory<EventDestination>,
    pub subscription_memory: Memory<EventSubscription>,
    /// The namespaces that may use the operator-wide key (those matching
    /// `--operator-key-namespace-selector`); every namespace when `None`.
    pub operator_key_namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// The namespaces that may adopt with the operator-wide key (those matching
    /// `--adoption-namespace-selector`); none when `None`.
    pub adoption_namespaces: Option<SelectedNamespaces>,
    /// Leader election's fence (see [`Context::may_write`]); `None` without leader election.
    pub fence: Option<LeaseFence>,
    /// The work slots of each kind, shared fairly across namespaces ([`crate::fairness`]);
    /// unbounded until the controller sets them.
    pub destination_gate: crate::fairness::Gate,
    pub subscription_gate: crate::fairness::Gate,
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
            destinations,
            subscriptions,
            destination_memory: Memory::default(),
            subscription_memory: Memory::default(),
            operator_key_namespaces: None,
            adoption_namespaces: None,
            fence: None,
            destination_gate: crate::fairness::Gate::new(0, Default::default()),
            subscription_gate: crate::fairness::Gate::new(0, Default::default()),
            default_deletion_policy: DeletionPolicy::Delete,
            namespace_defaults: None,
        }
    }

    /// The deletion policy that applies to `resource` ([`plan::policy_in_effect`]).
    pub fn deletion_policy_of<K: Managed>(&self, resource: &K) -> plan::PolicyInEffect {
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
        plan::policy_in_effect(
            resource.deletion_policy(),
            annotation.as_deref(),
            self.default_deletion_policy,
        )
    }

    /// The work slots of `kind`.
    pub fn gate(&self, kind: &str) -> &crate::fairness::Gate {
        if kind == <EventDestination as kube::Resource>::kind(&()) {
            &self.destination_gate
        } else {
            &self.subscription_gate
        }
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

    /// Forgets every refusal remembered for resources that use the operator-wide key: after
    /// that key changed, ngrok may answer differently.
    pub fn forget_operator_key_refusals(&self) {
        self.destination_memory
            .forget_refusals_where(|r| self.destinations.get(r).is_some_and(uses_operator_key));
        self.subscription_memory
            .forget_refusals_where(|r| self.subscriptions.get(r).is_some_and(uses_operator_key));
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

/// What the operator remembers about one resource between reconciles.
pub struct Remembered<K: Managed> {
    /// Consecutive transient failures, for a growing backoff (reset on success).
    pub failures: u32,
    /// Inputs ngrok already refused: not sent again until they change.
    pub refused: Option<RefusedInputs>,
    /// The account of the last reconcile: cleanup can still reach ngrok when the Secret holding
    /// the API key was deleted first (as in a namespace deletion), a change of key is noticed,
    /// and the account lives as long as a resource uses it.
    pub account: Option<Arc<Account>>,
    /// The status this process last wrote and the uid it was written for (see
    /// [`Memory::status_to_trust`]).
    pub written: Option<(String, K::Status)>,
    /// An id this process created for the resource, until the status records it: if that
    /// status write failed, the next pass takes it instead of looking for (or making) another.
    pub created: Option<K::Remote>,
    /// The object left in the previous account by a move whose delete there failed: deleted
    /// by the next pass, with the previous account's key.
    pub leftover: Option<(String, Arc<Account>)>,
    /// Attempts of this deletion that could not reach the resource's account (its Secret gone,
    /// its key refused): after `plan::UNREACHABLE_DELETE_ATTEMPTS` the resource is released.
    pub unreachable_deletes: u32,
}

impl<K: Managed> Default for Remembered<K> {
    fn default() -> Self {
        Self {
            failures: 0,
            refused: None,
            account: None,
            written: None,
            created: None,
            leftover: None,
            unreachable_deletes: 0,
        }
    }
}

/// What the operator remembers about the resources of one kind.
pub struct Memory<K: Managed> {
    entries: Mutex<HashMap<ObjectRef<K>, Remembered<K>>>,
    /// Which resources reference which Secrets, to map a changed Secret to them.
    pub secrets: SecretIndex<K>,
}

impl<K: Managed> Default for Memory<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            secrets: SecretIndex::default(),
        }
    }
}

impl<K: Managed> Memory<K> {
    /// Reads or changes what is remembered about `resource` (an entry is made on first use).
    pub fn with<T>(&self, resource: &ObjectRef<K>, f: impl FnOnce(&mut Remembered<K>) -> T) -> T {
        let mut entries = self.entries.lock().expect("memory lock");
        f(entries.entry(resource.clone()).or_default())
    }

    /// Reads what is remembered about `resource`, without making an entry.
    pub fn get<T>(
        &self,
        resource: &ObjectRef<K>,
        f: impl FnOnce(&Remembered<K>) -> T,
    ) -> Option<T> {
        self.entries
            .lock()
            .expect("memory lock")
            .get(resource)
            .map(f)
    }

    /// The status to start a reconcile from. The operator is the only writer of this status, so
    /// what it last wrote is the truth; the cache may still hold an older copy (a reconcile
    /// queued by our own intermediate write can start before the final write reaches the
    /// cache). Once the cache has caught up, the copy is released.
    pub fn status_to_trust(&self, resource: &K) -> Option<K::Status> {
        let uid = resource.uid().unwrap_or_default();
        let cached = resource.status();
        let mut entries = self.entries.lock().expect("memory lock");
        let Some(entry) = entries.get_mut(&ObjectRef::from_obj(resource)) else {
            return cached.cloned();
        };
        match entry.written.take() {
            Some((written_uid, written)) if written_uid == uid && cached != Some(&written) => {
                entry.written = Some((written_uid, written.clone()));
                Some(written)
            }
            // Caught up, or written for an earlier resource of the same name.
            _ => cached.cloned(),
        }
    }

    /// Records the status just written for `resource`.
    pub fn wrote(&self, resource: &K, status: &K::Status) {
        let uid = resource.uid().unwrap_or_default();
        self.with(&ObjectRef::from_obj(resource), |entry| {
            entry.written = Some((uid, status.clone()));
        });
    }

    /// The ids this process created for resources other than `resource` that their statuses
    /// may not show yet: never the outcome of `resource`'s own lost create.
    pub fn created_by_others(&self, resource: &ObjectRef<K>) -> HashSet<String> {
        let entries = self.entries.lock().expect("memory lock");
        entries
            .iter()
            .filter(|(other, _)| *other != resource)
            .filter_map(|(_, entry)| entry.created.as_ref().map(|c| c.id().to_string()))
            .collect()
    }

    /// Whether `other`'s last reconcile in this process used `account`.
    pub fn uses_account(&self, other: &ObjectRef<K>, account: &Arc<Account>) -> bool {
        self.get(other, |entry| {
            entry
                .account
                .as_ref()
                .is_some_and(|a| Arc::ptr_eq(a, account))
        })
        .unwrap_or(false)
    }

    fn forget_refusals_where(&self, mut matches: impl FnMut(&ObjectRef<K>) -> bool) {
        let mut entries = self.entries.lock().expect("memory lock");
        for (resource, entry) in entries.iter_mut() {
            if matches(resource) {
                entry.refused = None;
            }
        }
    }

    /// Forgets a resource that is gone from Kubernetes.
    pub fn forget(&self, resource: &ObjectRef<K>) {
        self.entries.lock().expect("memory lock").remove(resource);
        self.secrets.forget(resource);
    }

    /// How many resources are remembered (tests: no entry outlives its resource).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("memory lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
