//! Reconciling resources with ngrok: the effects. What to send is decided by the pure functions
//! of [`crate::desired`]; this module observes, acts and reports. The flow is the same for every
//! kind ([`Managed`]): its modules say what a kind reads, sends and forbids.
//!
//! Cost model (what the benchmark measures):
//! - create: one POST; Kubernetes writes: the finalizer, the intent to create, the result;
//! - in sync: nothing, until the account's next drift pass, where one shared listing per kind
//!   (ceil(N/100) calls) serves every resource of the account;
//! - spec or inputs changed: one GET, then one PATCH carrying only what differs.

mod destination;
mod observe;
mod subscription;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Secret as KubeSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::accounts::{Account, Accounts, Snapshot};
use crate::annotations;
use crate::conditions::{self, Phase};
use crate::crd::{
    DeletionPolicy, EventDestination, EventSubscription, PendingCreate, SecretKeyRef,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::secrets::{self, SecretIndex};

/// Finalizer that holds a resource until its ngrok object is deleted (or retained).
pub const FINALIZER: &str = "events.ngrok.io/cleanup";
/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "ngrok-events-operator";
/// How far ngrok's clock may be behind ours when matching a lost create by its creation time.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(2);

/// The generation and inputs hash of a spec ngrok refused.
pub type RefusedInputs = (Option<i64>, String);

/// A kind of resource that mirrors one kind of ngrok object: where its state lives, what a
/// request depends on, and the ngrok calls. The generic flow below does the rest.
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
    fn deletion_policy(&self) -> DeletionPolicy;
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
        secrets: crate::drift::SecretState,
    ) -> Vec<crate::drift::FieldDifference>;

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

/// The status fields the generic flow reads and writes.
pub trait ManagedStatus: Clone + Default + PartialEq + Serialize + Send + Sync + 'static {
    fn id(&self) -> Option<&String>;
    fn set_remote(&mut self, remote: Option<&dyn RemoteObject>);
    fn pending_create(&self) -> Option<&PendingCreate>;
    fn set_pending_create(&mut self, pending: Option<PendingCreate>);
    fn conditions(&self) -> &[Condition];
    fn observed_generation(&self) -> Option<i64>;
    fn set_conditions(&mut self, generation: Option<i64>, conditions: Vec<Condition>);
    fn set_drift(&mut self, drift: Vec<crate::drift::FieldDifference>);
}

/// What every ngrok object has.
pub trait RemoteObject: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn uri(&self) -> &str;
    fn created_at(&self) -> &str;
}

/// The status types share these field names; one implementation serves them all.
macro_rules! managed_status {
    ($($status:ty),*) => {$(
        impl ManagedStatus for $status {
            fn id(&self) -> Option<&String> {
                self.id.as_ref()
            }
            fn set_remote(&mut self, remote: Option<&dyn RemoteObject>) {
                self.id = remote.map(|r| r.id().to_string());
                self.uri = remote.map(|r| r.uri().to_string());
                self.created_at = remote.map(|r| r.created_at().to_string());
            }
            fn pending_create(&self) -> Option<&PendingCreate> {
                self.pending_create.as_ref()
            }
            fn set_pending_create(&mut self, pending: Option<PendingCreate>) {
                self.pending_create = pending;
            }
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn set_conditions(&mut self, generation: Option<i64>, conditions: Vec<Condition>) {
                self.observed_generation = generation;
                self.conditions = conditions;
            }
            fn set_drift(&mut self, drift: Vec<crate::drift::FieldDifference>) {
                self.drift = drift;
            }
        }
    )*};
}
managed_status!(
    crate::crd::EventDestinationStatus,
    crate::crd::EventSubscriptionStatus
);

macro_rules! remote_object {
    ($($remote:ty),*) => {$(
        impl RemoteObject for $remote {
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
    )*};
}
remote_object!(
    ngrok_api::types::EventDestination,
    ngrok_api::types::EventSubscription
);

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub accounts: Accounts,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub drift_interval: Duration,
    /// Only Secrets labelled `events.ngrok.io/credentials=true` may be read (see [`secrets`]).
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
}

/// What the operator keeps about the resources of one kind between reconciles.
pub struct Memory<K: Managed> {
    /// Consecutive transient failures per resource, for a growing backoff (reset on success).
    pub failures: Mutex<HashMap<ObjectRef<K>, u32>>,
    /// Inputs ngrok already refused: not sent again until they change.
    pub refused: Mutex<HashMap<ObjectRef<K>, RefusedInputs>>,
    /// The account of each resource's last reconcile, so that cleanup can still reach ngrok when
    /// the Secret holding the API key was deleted first (as in a namespace deletion).
    pub last_account: Mutex<HashMap<ObjectRef<K>, Arc<Account>>>,
    /// The status this process last wrote, by resource uid (see `Reconciliation::new`).
    pub statuses: Mutex<HashMap<String, K::Status>>,
    /// Which resources reference which Secrets, to map a changed Secret to them.
    pub secrets: SecretIndex<K>,
}

impl<K: Managed> Default for Memory<K> {
    fn default() -> Self {
        Self {
            failures: Mutex::default(),
            refused: Mutex::default(),
            last_account: Mutex::default(),
            statuses: Mutex::default(),
            secrets: SecretIndex::default(),
        }
    }
}

impl<K: Managed> Memory<K> {
    /// Forgets a resource that is gone from Kubernetes.
    fn forget(&self, resource: &K) {
        let object_ref = ObjectRef::from_obj(resource);
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&object_ref);
        self.refused
            .lock()
            .expect("refused lock")
            .remove(&object_ref);
        self.last_account
            .lock()
            .expect("account lock")
            .remove(&object_ref);
        self.statuses
            .lock()
            .expect("statuses lock")
            .remove(&resource.uid().unwrap_or_default());
        self.secrets.forget(&object_ref);
    }
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
        }
    }

    /// Whether resources of `namespace` may use the operator-wide API key.
    pub fn operator_key_allowed(&self, namespace: &str) -> bool {
        self.operator_key_namespaces
            .as_ref()
            .is_none_or(|selected| selected.get(&ObjectRef::new(namespace)).is_some())
    }

    /// Forgets every refusal remembered for resources that use the operator-wide key: after
    /// that key changed, ngrok may answer differently.
    pub fn forget_operator_key_refusals(&self) {
        fn forget<K: Managed>(memory: &Memory<K>, store: &Store<K>) {
            let mut refused = memory.refused.lock().expect("refused lock");
            refused.retain(|object_ref, _| {
                store
                    .get(object_ref)
                    .is_some_and(|resource| resource.api_key_ref().is_some())
            });
        }
        forget(&self.destination_memory, &self.destinations);
        forget(&self.subscription_memory, &self.subscriptions);
    }
}

/// Entry point for the controller: dispatches to [`apply`] or [`cleanup`] via the finalizer.
pub async fn reconcile<K: Managed>(resource: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = resource.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", kind = K::KIND, namespace = %namespace, name = %resource.name_any());
    let _timer = ctx.metrics.start_reconcile(K::KIND);
    let api = Api::<K>::namespaced(ctx.client.clone(), &namespace);
    let result = tracing::Instrument::instrument(
        finalizer(&api, FINALIZER, resource, |event| async {
            match event {
                Finalizer::Apply(resource) => apply(resource.as_ref(), &ctx).await,
                Finalizer::Cleanup(resource) => cleanup(resource.as_ref(), &ctx).await,
            }
        }),
        span,
    )
    .await
    .map_err(|e| match e {
        // What apply or cleanup returned: the error itself, for reasons, policy and metrics.
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    });
    if result.is_ok() {
        ctx.metrics.reconciled(K::KIND, "success");
    }
    result
}

/// What the controller does after a failed reconcile: a person must act → wait for a change;
/// otherwise retry with a per-resource backoff that grows until a reconcile succeeds.
pub fn error_policy<K: Managed>(resource: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciled(K::KIND, error.reason());
    let (kind, namespace, name) = (
        K::KIND,
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    );
    if error.is_stalled() {
        warn!(kind, namespace, name, reason = error.reason(), error = %error.message(), "stalled until the resource or a Secret it uses changes");
        return Action::await_change();
    }
    let attempt = {
        let mut failures = K::memory(&ctx).failures.lock().expect("failures lock");
        let count = failures
            .entry(ObjectRef::from_obj(resource.as_ref()))
            .or_default();
        *count = count.saturating_add(1);
        *count
    };
    let queued = matches!(error, Error::CreateQueued);
    let delay = if queued {
        // Waiting for another resource's create is expected to end soon; retrying faster (but
        // still backing off, in case that create is itself stuck) keeps such bursts short.
        backoff_delay(attempt, Duration::from_millis(200), Duration::from_secs(10))
    } else {
        backoff_delay(attempt, Duration::from_secs(1), Duration::from_secs(300))
    };
    if queued {
        debug!(kind, namespace, name, retry_in = ?delay, "waiting for another create of the same content");
    } else if error.waits_for_another_resource() {
        // That resource's changes trigger this one; the requeue is only a safety net.
        debug!(kind, namespace, name, reason = error.reason(), error = %error.message(), retry_in = ?delay, "waiting for another resource");
    } else {
        warn!(kind, namespace, name, reason = error.reason(), error = %error.message(), retry_in = ?delay, "reconcile failed; retrying");
    }
    Action::requeue(delay)
}

/// `first`, twice that, four times … capped at `cap`, each plus a random part of itself
/// (jitter), so that resources failing together do not retry together.
fn backoff_delay(attempt: u32, first: Duration, cap: Duration) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(cap)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(cap)
}

/// `at` without its fraction of a second: the API server stores condition times in whole
/// seconds, and the status remembered in memory must equal what the cache reads back, or it is
/// never released (see `Reconciliation::new`).
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// The state one reconcile works on: the resource, its status as last written, and the
/// events to publish once the status is written.
struct Reconciliation<'a, K: Managed> {
    resource: &'a K,
    ctx: &'a Context,
    status: K::Status,
    written: Option<K::Status>,
    events: Vec<(EventType, &'static str, String)>,
    /// The inputs hash of this pass, once the inputs were read.
    inputs_hash: Option<String>,
}

impl<'a, K: Managed> Reconciliation<'a, K> {
    fn new(resource: &'a K, ctx: &'a Context) -> Self {
        // The operator is the only writer of this status, so what it last wrote is the truth;
        // the cache may still hold an older copy (a reconcile queued by our own intermediate
        // write can start before the final write reaches the cache).
        let uid = resource.uid().unwrap_or_default();
        let mut statuses = K::memory(ctx).statuses.lock().expect("statuses lock");
        let written = match statuses.get(&uid) {
            // The cache has caught up with the last write: no need to remember it any longer.
            Some(last) if resource.status() == Some(last) => {
                statuses.remove(&uid);
                resource.status().cloned()
            }
            Some(last) => Some(last.clone()),
            None => resource.status().cloned(),
        };
        drop(statuses);
        Self {
            resource,
            ctx,
            status: written.clone().unwrap_or_default(),
            written,
            events: Vec::new(),
            inputs_hash: None,
        }
    }

    fn object_ref(&self) -> ObjectRef<K> {
        ObjectRef::from_obj(self.resource)
    }

    fn event(&mut self, type_: EventType, reason: &'static str, note: String) {
        let note = ngrok_api::text::one_line(&note, crate::error::MAX_MESSAGE_CHARS);
        self.events.push((type_, reason, note));
    }

    /// Writes the status for `phase` with server-side apply, unless nothing changed.
    async fn write_status(&mut self, phase: &Phase<'_>) -> Result<()> {
        let generation = self.resource.meta().generation;
        let previous = self.written.clone().unwrap_or_default();
        self.resource.describe(&mut self.status);
        let conditions = conditions::conditions(
            previous.conditions(),
            generation,
            phase,
            K::NOUN,
            &Time(whole_seconds(Timestamp::now())),
        );
        self.status.set_conditions(generation, conditions);
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let became_ready = conditions::is_true(self.status.conditions(), conditions::READY)
            && !conditions::is_true(previous.conditions(), conditions::READY);
        if became_ready
            && previous.id().is_none()
            && let Some(created) = &self.resource.meta().creation_timestamp
        {
            let seconds = Timestamp::now().duration_since(created.0).as_secs_f64();
            self.ctx.metrics.first_ready(K::KIND, seconds.max(0.0));
        }
        // A new reason for not being Ready is worth telling whoever runs `kubectl describe`.
        if let Phase::Failed(error) = phase
            && conditions::reason(previous.conditions(), conditions::READY) != Some(error.reason())
        {
            let type_ = if error.is_stalled() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(type_, error.reason(), error.message());
        }
        let api = Api::<K>::namespaced(
            self.ctx.client.clone(),
            &self.resource.namespace().unwrap_or_default(),
        );
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::KIND,
            "status": self.status,
        });
        api.patch_status(
            &self.resource.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        self.written = Some(self.status.clone());
        K::memory(self.ctx)
            .statuses
            .lock()
            .expect("statuses lock")
            .insert(self.resource.uid().unwrap_or_default(), self.status.clone());
        Ok(())
    }

    async fn publish_events(&mut self) {
        let reference = self.resource.object_ref(&());
        for (type_, reason, note) in self.events.drain(..) {
            let event = KubeEvent {
                type_,
                reason: reason.to_string(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            match self.ctx.recorder.publish(&event, &reference).await {
                Ok(()) => self.ctx.metrics.event_published(K::KIND, reason),
                Err(e) => warn!(error = %e, reason, "could not publish an event"),
            }
        }
    }
}

/// What a successful pass of [`sync`] leaves behind.
enum Synced {
    Ready {
        requeue: Duration,
    },
    Paused,
    /// ngrok already refused exactly this input: leave the Stalled status as it is.
    StillRefused,
    /// Observe mode: these fields differ (see `observe`).
    Observed {
        differences: Vec<String>,
        requeue: Duration,
    },
}

async fn apply<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut reconciliation = Reconciliation::new(resource, ctx);
    let result = sync(&mut reconciliation).await;
    let phase = match &result {
        Ok(Synced::Ready { .. }) => Phase::Ready,
        Ok(Synced::Paused) => Phase::Paused,
        Ok(Synced::StillRefused) => return Ok(Action::await_change()),
        Ok(Synced::Observed { differences, .. }) => Phase::Observing {
            differences: differences.clone(),
        },
        Err(error) => Phase::Failed(error),
    };
    if let (Err(Error::NgrokRejected(_) | Error::NgrokAuthentication(_)), Some(hash)) =
        (&result, &reconciliation.inputs_hash)
    {
        let inputs = (resource.meta().generation, hash.clone());
        K::memory(ctx)
            .refused
            .lock()
            .expect("refused lock")
            .insert(reconciliation.object_ref(), inputs);
    }
    let written = reconciliation.write_status(&phase).await;
    reconciliation.publish_events().await;
    written?;
    match result? {
        Synced::Ready { requeue } => {
            K::memory(ctx)
                .failures
                .lock()
                .expect("failures lock")
                .remove(&reconciliation.object_ref());
            Ok(Action::requeue(requeue))
        }
        Synced::Observed { requeue, .. } => Ok(Action::requeue(requeue)),
        Synced::Paused | Synced::StillRefused => Ok(Action::await_change()),
    }
}

/// Brings ngrok in line with the spec, updating `r.status` (id, uri, inputs, pending create)
/// as it goes.
async fn sync<K: Managed>(r: &mut Reconciliation<'_, K>) -> Result<Synced> {
    let resource = r.resource;
    let memory = K::memory(r.ctx);
    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    memory.secrets.record(resource, resource.secret_refs());
    // Annotations first: a bad one stalls the resource before anything is read or sent.
    let interval = annotations::drift_interval(resource.annotations(), r.ctx.drift_interval)?;
    let adopt_id = annotations::adopt_id(resource.annotations(), K::ID_PREFIX)?;
    // Cleanup may still use the operator's key for what was created with it; new work may not.
    if resource.api_key_ref().is_none()
        && !r
            .ctx
            .operator_key_allowed(&resource.namespace().unwrap_or_default())
    {
        return Err(Error::OperatorKeyNotAllowed);
    }
    let account = account_for(r.ctx, resource, &secrets_api).await?;
    let prepared = resource.prepare(r.ctx, &account, &secrets_api).await?;
    let inputs_hash = prepared.inputs_hash.clone();
    r.inputs_hash = Some(inputs_hash.clone());
    memory
        .last_account
        .lock()
        .expect("account lock")
        .insert(r.object_ref(), account.clone());

    // ngrok said no to exactly this before: asking again cannot change its mind.
    let inputs = (resource.meta().generation, inputs_hash.clone());
    {
        let mut refused = memory.refused.lock().expect("refused lock");
        if refused.get(&r.object_ref()) == Some(&inputs) {
            debug!("ngrok refused this spec before; waiting for a change");
            return Ok(Synced::StillRefused);
        }
        refused.remove(&r.object_ref());
    }

    if annotations::is_observing(resource.annotations())? {
        return observe::observe(r, &account, &prepared, adopt_id, interval).await;
    }
    r.status.set_drift(Vec::new());
    if annotations::is_paused(resource.annotations()) {
        return Ok(Synced::Paused);
    }
    let (id, adopted) = match r.status.id().cloned() {
        Some(id) => (id, None),
        None => match adopt_id {
            Some(adopt_id) => {
                let remote = adopt(r, &account, adopt_id).await?;
                (remote.id().to_string(), Some(remote))
            }
            None => {
                create(r, &account, &prepared).await?;
                return Ok(Synced::Ready {
                    requeue: drift_requeue(interval, r.ctx, &account),
                });
            }
        },
    };

    let recorded = K::recorded_inputs(&r.status);
    let in_sync = r.status.observed_generation() == resource.meta().generation
        && recorded.as_deref() == Some(inputs_hash.as_str())
        && conditions::is_true(r.status.conditions(), conditions::READY);
    let remote = if adopted.is_some() {
        adopted
    } else if in_sync {
        let verified = account.verified_at(&id);
        // Checked recently (this reconcile comes from a status write or a label change, not
        // from the drift schedule, which is an interval ±10% after the last check).
        if verified.is_some_and(|at| at.elapsed() < interval / 2) {
            return Ok(Synced::Ready {
                requeue: drift_requeue(interval, r.ctx, &account),
            });
        }
        // Drift check, from a listing shared by the whole account and newer than the last
        // time this object was written or checked.
        let snapshot = K::listing(&account, verified).await?;
        snapshot.objects.get(&id).cloned()
    } else {
        match K::get(&account, &id).await {
            Ok(remote) => Some(remote),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        }
    };

    match remote {
        None => {
            // Deleted in ngrok behind our back: create it again, the crash-safe way.
            info!(old_id = %id, "{} is gone from ngrok; creating it again", K::NOUN);
            account.forget(&id);
            r.status.set_remote(None);
            create(r, &account, &prepared).await?;
            let new_id = r.status.id().cloned().unwrap_or_default();
            r.event(
                EventType::Normal,
                "DriftCorrected",
                format!("{id} was deleted in ngrok; created {new_id}"),
            );
        }
        Some(remote) => {
            let resend = prepared.has_secrets && recorded.as_deref() != Some(inputs_hash.as_str());
            if let Some((update, fields)) = K::changes(&prepared.desired, &remote, resend) {
                K::update(&account, &id, &update).await?;
                if in_sync {
                    info!(%id, fields, "reverted changes made outside Kubernetes");
                    r.event(
                        EventType::Normal,
                        "DriftCorrected",
                        format!("reverted changes to {fields} made outside Kubernetes in {id}"),
                    );
                } else {
                    info!(%id, fields, "updated {}", K::NOUN);
                    r.event(
                        EventType::Normal,
                        "Updated",
                        format!("updated {fields} of {id}"),
                    );
                }
            }
            K::record_inputs(&mut r.status, &prepared);
            r.status.set_remote(Some(&remote));
            account.mark_verified(&id);
        }
    }
    Ok(Synced::Ready {
        requeue: drift_requeue(interval, r.ctx, &account),
    })
}

/// The account a resource uses: its own API key from `spec.apiKeyRef`, or the operator's.
async fn account_for<K: Managed>(
    ctx: &Context,
    resource: &K,
    secrets_api: &Api<KubeSecret>,
) -> Result<Arc<Account>> {
    let key = match resource.api_key_ref() {
        Some(reference) => secrets::api_key_from(
            secrets::resolve(secrets_api, &[reference], ctx.require_credentials_label)
                .await?
                .get(reference)?,
        ),
        None => ctx.accounts.operator_key().ok_or(Error::ApiKeyMissing)?,
    };
    Ok(ctx.accounts.get(&key)?)
}

/// Creates the ngrok object without ever leaving a twin: the intent is recorded in the status
/// before the POST, and a create whose outcome was lost is looked for in a listing before
/// another is sent.
async fn create<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    account: &Arc<Account>,
    prepared: &Prepared<K::Desired>,
) -> Result<()> {
    let fingerprint = K::fingerprint(&prepared.desired);
    if let Some(pending) = r.status.pending_create().cloned() {
        match find_lost_create(r, account, &pending).await? {
            Some(found) => {
                info!(id = %found.id(), "found the {} of an earlier create whose outcome was lost", K::NOUN);
                record_created(r, account, &found);
                // It was created from the intent's content; the next pass updates any change.
                if pending.fingerprint != fingerprint {
                    K::forget_inputs(&mut r.status);
                }
                return Ok(());
            }
            None => debug!("the earlier create did not happen; creating"),
        }
    }

    // One create of a given content at a time (per account): a lost create is then
    // recognisable by its content alone, however alike the resources are.
    let Some(_guard) = account.begin_create(&fingerprint) else {
        return Err(Error::CreateQueued);
    };
    let uid = r.resource.uid();
    let other_pending = K::store(r.ctx).state().iter().any(|other| {
        other.uid() != uid
            && other.status().is_some_and(|s| {
                s.id().is_none()
                    && s.pending_create()
                        .is_some_and(|p| p.fingerprint == fingerprint)
            })
    });
    if other_pending {
        return Err(Error::CreateQueued);
    }

    r.status.set_pending_create(Some(PendingCreate {
        started_at: Timestamp::now().to_string(),
        fingerprint,
    }));
    K::record_inputs(&mut r.status, prepared);
    r.write_status(&Phase::Progressing {
        reason: "Creating",
        message: format!("Creating the {} in ngrok", K::NOUN),
    })
    .await?;

    match K::create(account, &prepared.desired).await {
        Ok(created) => {
            info!(id = %created.id(), "created {}", K::NOUN);
            record_created(r, account, &created);
            r.event(
                EventType::Normal,
                "Created",
                format!("created {} in ngrok", created.id()),
            );
            Ok(())
        }
        Err(e) => {
            // Only a refusal (4xx) proves nothing was created; after anything else the create
            // may have happened, and the intent stays for the next pass to look for it.
            if e.status().is_some_and(|s| (400..500).contains(&s)) {
                r.status.set_pending_create(None);
            }
            Err(e.into())
        }
    }
}

fn record_created<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    account: &Account,
    created: &K::Remote,
) {
    r.status.set_remote(Some(created));
    r.status.set_pending_create(None);
    account.mark_verified(created.id());
}

/// Looks for the object a lost create may have made: same content, created after the intent
/// (less clock skew), and not any other resource's. More than one → a person decides.
async fn find_lost_create<K: Managed>(
    r: &Reconciliation<'_, K>,
    account: &Account,
    pending: &PendingCreate,
) -> Result<Option<K::Remote>> {
    let since = pending
        .started_at
        .parse::<Timestamp>()
        .ok()
        .map(|t| t - CLOCK_SKEW);
    let snapshot = K::listing(account, Some(Instant::now())).await?;
    let claimed: HashSet<String> = K::store(r.ctx)
        .state()
        .iter()
        .filter(|other| other.uid() != r.resource.uid())
        .filter_map(|other| other.status().and_then(|s| s.id().cloned()))
        .collect();
    let mut candidates: Vec<&K::Remote> = snapshot
        .objects
        .values()
        .filter(|o| K::observed_fingerprint(o) == pending.fingerprint)
        .filter(|o| !claimed.contains(o.id()) && account.verified_at(o.id()).is_none())
        .filter(|o| match (since, o.created_at().parse::<Timestamp>()) {
            (Some(since), Ok(created)) => created >= since,
            _ => true,
        })
        .collect();
    candidates.sort_by(|a, b| a.id().cmp(b.id()));
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Error::AmbiguousCreate {
            candidates: many.iter().map(|o| o.id().to_string()).collect(),
        }),
    }
}

/// Takes over an existing ngrok object named by the adopt-id annotation, unless another
/// resource already manages it.
async fn adopt<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    account: &Account,
    id: &str,
) -> Result<K::Remote> {
    let uid = r.resource.uid();
    let namespace = r.resource.namespace();
    let owner = K::store(r.ctx).state().iter().find_map(|other| {
        let claims = other.uid() != uid
            && other.status().and_then(|s| s.id()).map(String::as_str) == Some(id);
        // Another namespace's resources are never named to this one.
        claims.then(|| match other.namespace() == namespace {
            true => format!("{} {}", K::KIND, other.name_any()),
            false => format!("an {} in another namespace", K::KIND),
        })
    });
    if let Some(owner) = owner {
        return Err(Error::AdoptTargetInUse {
            id: id.to_string(),
            owner,
        });
    }
    let remote = match K::get(account, id).await {
        Ok(remote) => remote,
        Err(e) if e.is_not_found() => {
            return Err(Error::AdoptTargetNotFound { id: id.to_string() });
        }
        Err(e) => return Err(e.into()),
    };
    r.status.set_remote(Some(&remote));
    // What it was created from is unknown: the update that follows sends what differs.
    K::forget_inputs(&mut r.status);
    r.event(
        EventType::Normal,
        "Adopted",
        format!("took over {id} from ngrok"),
    );
    Ok(remote)
}

async fn cleanup<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(resource, ctx);
    let result = delete_remote(&mut r).await;
    if let Err(error) = &result {
        r.write_status(&Phase::Failed(error)).await.ok();
    }
    r.publish_events().await;
    if result.is_ok() {
        K::memory(ctx).forget(resource);
    }
    result.map(|()| Action::await_change())
}

async fn delete_remote<K: Managed>(r: &mut Reconciliation<'_, K>) -> Result<()> {
    let resource = r.resource;
    let id = r.status.id().cloned();
    let keep = match (
        resource.deletion_policy(),
        annotations::is_paused(resource.annotations()),
    ) {
        (DeletionPolicy::Retain, _) => Some("deletionPolicy is Retain"),
        (DeletionPolicy::Delete, true) => Some("the resource is paused"),
        _ if annotations::is_observing(resource.annotations()).unwrap_or(true) => {
            Some("the resource only observes")
        }
        (DeletionPolicy::Delete, false) => None,
    };
    if let Some(why) = keep {
        if let Some(id) = &id {
            info!(%id, why, "leaving the {} in ngrok", K::NOUN);
            r.event(
                EventType::Normal,
                "Retained",
                format!("left {id} in ngrok: {why}"),
            );
        }
        return Ok(());
    }
    if id.is_none() && r.status.pending_create().is_none() {
        return Ok(());
    }
    resource.check_deletable(r.ctx)?;

    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    let remembered = K::memory(r.ctx)
        .last_account
        .lock()
        .expect("account lock")
        .get(&r.object_ref())
        .cloned();
    let account = match (account_for(r.ctx, resource, &secrets_api).await, remembered) {
        (Ok(account), _) => account,
        // The API key's Secret may go first when a whole namespace is deleted.
        (Err(_), Some(account)) => account,
        (Err(e), None) => return Err(e),
    };
    let id = match id {
        Some(id) => id,
        None => {
            let pending = r.status.pending_create().cloned().unwrap_or_default();
            match find_lost_create(r, &account, &pending).await? {
                Some(found) => found.id().to_string(),
                None => return Ok(()),
            }
        }
    };
    match K::delete(&account, &id).await {
        Ok(()) => info!(%id, "deleted {}", K::NOUN),
        Err(e) if e.is_not_found() => debug!(%id, "{} was already gone", K::NOUN),
        Err(e) => return Err(e.into()),
    }
    account.forget(&id);
    r.event(
        EventType::Normal,
        "Deleted",
        format!("deleted {id} from ngrok"),
    );
    Ok(())
}

/// When to look at an in-sync resource again: the account's next drift pass, shared by all its
/// resources so that one listing serves them; a per-resource interval goes its own way.
fn drift_requeue(interval: Duration, ctx: &Context, account: &Account) -> Duration {
    if interval != ctx.drift_interval {
        // Bounded by `annotations::drift_interval`, so the product cannot overflow.
        return interval.mul_f64(rand::random_range(0.9..=1.1));
    }
    account
        .next_drift_pass(interval)
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let (first, cap) = (Duration::from_secs(1), Duration::from_secs(300));
        let one = backoff_delay(1, first, cap);
        assert!(one >= first && one <= first * 2, "{one:?}");
        assert!(backoff_delay(4, first, cap) >= Duration::from_secs(8));
        assert!(backoff_delay(40, first, cap) <= cap * 2);
    }
}
