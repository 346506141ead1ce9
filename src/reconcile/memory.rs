//! What the operator remembers about each resource between reconciles: one map per kind
//! ([`Memory`]), one entry per resource, gone with the resource.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Managed;
use super::managed::RemoteObject;
use crate::accounts::Account;
use crate::secrets::SecretIndex;

/// The generation and inputs hash of a spec ngrok refused.
pub type RefusedInputs = (Option<i64>, String);

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

    pub(super) fn forget_refusals_where(&self, mut matches: impl FnMut(&ObjectRef<K>) -> bool) {
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
