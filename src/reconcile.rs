//! Reconciling one `EventDestination` with ngrok: the effects. What to send is decided by the
//! pure functions of [`crate::desired`]; this module observes, acts and reports.
//!
//! Cost model (what the benchmark measures):
//! - create: one POST; Kubernetes writes: the finalizer, the intent to create, the result;
//! - in sync: nothing, until the account's next drift pass, where one shared listing
//!   (ceil(N/100) calls) serves every resource of the account;
//! - spec or secret changed: one GET, then one PATCH carrying only what differs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use ngrok_api::types::EventDestination as Remote;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::accounts::{Account, Accounts};
use crate::conditions::{self, Phase};
use crate::crd::{
    ADOPT_ID_ANNOTATION, DRIFT_INTERVAL_ANNOTATION, DeletionPolicy, EventDestination,
    EventDestinationStatus, PAUSED_ANNOTATION, PendingCreate,
};
use crate::desired;
use crate::error::{Error, Result};
use crate::secrets::{self, SecretIndex};
use crate::telemetry::Metrics;

/// Finalizer that holds a resource until its destination is deleted (or retained).
pub const FINALIZER: &str = "events.ngrok.io/cleanup";
/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "ngrok-events-operator";
/// The kind, as a metrics label.
pub const KIND: &str = "EventDestination";
/// How far ngrok's clock may be behind ours when matching a lost create by its creation time.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(2);

/// The generation and secrets hash of a spec ngrok refused.
pub type RefusedInputs = (Option<i64>, String);

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub accounts: Accounts,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// The controller's cache of EventDestinations: which ids are taken, which creates pending.
    pub store: Store<EventDestination>,
    pub drift_interval: Duration,
    /// Consecutive transient failures per resource, for a growing backoff (reset on success).
    pub failures: Mutex<HashMap<ObjectRef<EventDestination>, u32>>,
    /// Inputs ngrok already refused: not sent again until they change.
    pub refused: Mutex<HashMap<ObjectRef<EventDestination>, RefusedInputs>>,
    /// The account of each resource's last reconcile, so that cleanup can still reach ngrok when
    /// the Secret holding the API key was deleted first (as in a namespace deletion).
    pub last_account: Mutex<HashMap<ObjectRef<EventDestination>, Arc<Account>>>,
    /// The status this process last wrote, by resource uid (see `Reconciliation::new`).
    pub statuses: Mutex<HashMap<String, EventDestinationStatus>>,
    /// Which resources reference which Secrets, to map a changed Secret to them.
    pub secret_index: Arc<SecretIndex>,
}

/// Entry point for the controller: dispatches to [`apply`] or [`cleanup`] via the finalizer.
pub async fn reconcile(destination: Arc<EventDestination>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = destination.namespace().unwrap_or_default();
    let span =
        tracing::info_span!("reconcile", namespace = %namespace, name = %destination.name_any());
    let _timer = ctx.metrics.start_reconcile(KIND);
    let api = Api::<EventDestination>::namespaced(ctx.client.clone(), &namespace);
    let result = tracing::Instrument::instrument(
        finalizer(&api, FINALIZER, destination, |event| async {
            match event {
                Finalizer::Apply(destination) => apply(&destination, &ctx).await,
                Finalizer::Cleanup(destination) => cleanup(&destination, &ctx).await,
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
        ctx.metrics.reconciled(KIND, "success");
    }
    result
}

/// What the controller does after a failed reconcile: a person must act → wait for a change;
/// otherwise retry with a per-resource backoff that grows until a reconcile succeeds.
pub fn error_policy(
    destination: Arc<EventDestination>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconciled(KIND, error.reason());
    let (namespace, name) = (
        destination.namespace().unwrap_or_default(),
        destination.name_any(),
    );
    if error.is_stalled() {
        warn!(namespace, name, reason = error.reason(), error = %error, "stalled until the resource or a Secret it uses changes");
        return Action::await_change();
    }
    let attempt = {
        let mut failures = ctx.failures.lock().expect("failures lock");
        let count = failures
            .entry(ObjectRef::from_obj(destination.as_ref()))
            .or_default();
        *count += 1;
        *count
    };
    // Waiting for another resource's create is expected to end soon; retrying faster (but
    // still backing off, in case that create is itself stuck) keeps such bursts short.
    let queued = matches!(error, Error::CreateQueued);
    let delay = if queued {
        backoff_delay(attempt, Duration::from_millis(200), Duration::from_secs(10))
    } else {
        backoff_delay(attempt, Duration::from_secs(1), Duration::from_secs(300))
    };
    if queued {
        debug!(namespace, name, retry_in = ?delay, "waiting for another create of the same content");
    } else {
        warn!(namespace, name, reason = error.reason(), error = %error, retry_in = ?delay, "reconcile failed; retrying");
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

/// The state one reconcile works on: the resource, its status as last written, and the
/// events to publish once the status is written.
struct Reconciliation<'a> {
    destination: &'a EventDestination,
    ctx: &'a Context,
    status: EventDestinationStatus,
    written: Option<EventDestinationStatus>,
    events: Vec<(EventType, &'static str, String)>,
    /// The keyed hash of this pass's secret values, once they were read.
    inputs_hash: Option<String>,
}

impl<'a> Reconciliation<'a> {
    fn new(destination: &'a EventDestination, ctx: &'a Context) -> Self {
        // The operator is the only writer of this status, so what it last wrote is the truth;
        // the cache may still hold an older copy (a reconcile queued by our own intermediate
        // write can start before the final write reaches the cache).
        let uid = destination.uid().unwrap_or_default();
        let mut statuses = ctx.statuses.lock().expect("statuses lock");
        let written = match statuses.get(&uid) {
            // The cache has caught up with the last write: no need to remember it any longer.
            Some(last) if destination.status.as_ref() == Some(last) => {
                statuses.remove(&uid);
                destination.status.clone()
            }
            Some(last) => Some(last.clone()),
            None => destination.status.clone(),
        };
        drop(statuses);
        Self {
            destination,
            ctx,
            status: written.clone().unwrap_or_default(),
            written,
            events: Vec::new(),
            inputs_hash: None,
        }
    }

    fn object_ref(&self) -> ObjectRef<EventDestination> {
        ObjectRef::from_obj(self.destination)
    }

    fn event(&mut self, type_: EventType, reason: &'static str, note: String) {
        self.events.push((type_, reason, note));
    }

    /// Writes the status for `phase` with server-side apply, unless nothing changed.
    async fn write_status(&mut self, phase: &Phase<'_>) -> Result<()> {
        let generation = self.destination.metadata.generation;
        let previous = self.written.clone().unwrap_or_default();
        self.status.observed_generation = generation;
        self.status.target = Some(self.destination.spec.target.kind().to_string());
        self.status.conditions = conditions::conditions(
            &previous.conditions,
            generation,
            phase,
            &Time(Timestamp::now()),
        );
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let became_ready = conditions::is_true(&self.status.conditions, conditions::READY)
            && !conditions::is_true(&previous.conditions, conditions::READY);
        if became_ready
            && previous.id.is_none()
            && let Some(created) = &self.destination.metadata.creation_timestamp
        {
            let seconds = Timestamp::now().duration_since(created.0).as_secs_f64();
            self.ctx.metrics.first_ready(KIND, seconds.max(0.0));
        }
        // A new reason for not being Ready is worth telling whoever runs `kubectl describe`.
        if let Phase::Failed(error) = phase
            && conditions::reason(&previous.conditions, conditions::READY) != Some(error.reason())
        {
            let type_ = if error.is_stalled() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.event(type_, error.reason(), error.to_string());
        }
        let api = Api::<EventDestination>::namespaced(
            self.ctx.client.clone(),
            &self.destination.namespace().unwrap_or_default(),
        );
        let patch = json!({
            "apiVersion": "events.ngrok.io/v1alpha1",
            "kind": "EventDestination",
            "status": self.status,
        });
        api.patch_status(
            &self.destination.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        self.written = Some(self.status.clone());
        self.ctx.statuses.lock().expect("statuses lock").insert(
            self.destination.uid().unwrap_or_default(),
            self.status.clone(),
        );
        Ok(())
    }

    async fn publish_events(&mut self) {
        let reference = self.destination.object_ref(&());
        for (type_, reason, note) in self.events.drain(..) {
            let event = KubeEvent {
                type_,
                reason: reason.to_string(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            };
            match self.ctx.recorder.publish(&event, &reference).await {
                Ok(()) => self.ctx.metrics.event_published(KIND, reason),
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
}

async fn apply(destination: &EventDestination, ctx: &Context) -> Result<Action> {
    let mut reconciliation = Reconciliation::new(destination, ctx);
    let result = sync(&mut reconciliation).await;
    let phase = match &result {
        Ok(Synced::Ready { .. }) => Phase::Ready,
        Ok(Synced::Paused) => Phase::Paused,
        Ok(Synced::StillRefused) => return Ok(Action::await_change()),
        Err(error) => Phase::Failed(error),
    };
    if let (Err(Error::NgrokRejected(_) | Error::NgrokAuthentication(_)), Some(hash)) =
        (&result, &reconciliation.inputs_hash)
    {
        let inputs = (destination.metadata.generation, hash.clone());
        ctx.refused
            .lock()
            .expect("refused lock")
            .insert(reconciliation.object_ref(), inputs);
    }
    let written = reconciliation.write_status(&phase).await;
    reconciliation.publish_events().await;
    written?;
    match result? {
        Synced::Ready { requeue } => {
            ctx.failures
                .lock()
                .expect("failures lock")
                .remove(&reconciliation.object_ref());
            Ok(Action::requeue(requeue))
        }
        Synced::Paused | Synced::StillRefused => Ok(Action::await_change()),
    }
}

/// Brings ngrok in line with the spec, updating `r.status` (id, uri, secrets hash, pending
/// create) as it goes.
async fn sync(r: &mut Reconciliation<'_>) -> Result<Synced> {
    let destination = r.destination;
    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &destination.namespace().unwrap_or_default(),
    );
    r.ctx.secret_index.record(destination);
    let account = account_for(r.ctx, destination, &secrets_api).await?;
    let values = secrets::resolve(&secrets_api, &destination.spec.target.secret_refs()).await?;
    let secrets_hash = values.keyed_hash(account.api_key());
    let values_empty = values.is_empty();
    r.inputs_hash = Some(secrets_hash.clone());
    let desired = desired::destination(&destination.spec, &values)?;
    r.ctx
        .last_account
        .lock()
        .expect("account lock")
        .insert(r.object_ref(), account.clone());

    // ngrok said no to exactly this before: asking again cannot change its mind.
    let inputs = (destination.metadata.generation, secrets_hash.clone());
    if r.ctx
        .refused
        .lock()
        .expect("refused lock")
        .get(&r.object_ref())
        == Some(&inputs)
    {
        debug!("ngrok refused this spec before; waiting for a change");
        return Ok(Synced::StillRefused);
    }
    r.ctx
        .refused
        .lock()
        .expect("refused lock")
        .remove(&r.object_ref());

    if is_paused(destination) {
        return Ok(Synced::Paused);
    }
    let (id, adopted) = match r.status.id.clone() {
        Some(id) => (id, None),
        None => match destination.annotations().get(ADOPT_ID_ANNOTATION) {
            Some(adopt_id) => {
                let remote = adopt(r, &account, adopt_id).await?;
                (remote.id.clone(), Some(remote))
            }
            None => {
                create(r, &account, &desired, &secrets_hash).await?;
                return Ok(Synced::Ready {
                    requeue: drift_requeue(r, &account),
                });
            }
        },
    };

    let in_sync = r.status.observed_generation == destination.metadata.generation
        && r.status.secrets_hash.as_deref() == Some(secrets_hash.as_str())
        && conditions::is_true(&r.status.conditions, conditions::READY);
    let interval = drift_interval(r);
    let remote = if adopted.is_some() {
        adopted
    } else if in_sync {
        let verified = account.verified_at(&id);
        // Checked recently (this reconcile comes from a status write or a label change, not
        // from the drift schedule, which is an interval ±10% after the last check).
        if verified.is_some_and(|at| at.elapsed() < interval / 2) {
            return Ok(Synced::Ready {
                requeue: drift_requeue(r, &account),
            });
        }
        // Drift check, from a listing shared by the whole account and newer than the last
        // time this destination was written or checked.
        let snapshot = account.snapshot_after(verified).await?;
        snapshot.destinations.get(&id).cloned()
    } else {
        match account.client.get_event_destination(&id).await {
            Ok(remote) => Some(remote),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        }
    };

    match remote {
        None => {
            // Deleted in ngrok behind our back: create it again, the crash-safe way.
            info!(old_id = %id, "destination is gone from ngrok; creating it again");
            account.forget(&id);
            r.status.id = None;
            r.status.uri = None;
            r.status.created_at = None;
            create(r, &account, &desired, &secrets_hash).await?;
            let new_id = r.status.id.clone().unwrap_or_default();
            r.event(
                EventType::Normal,
                "DriftCorrected",
                format!("{id} was deleted in ngrok; created {new_id}"),
            );
        }
        Some(remote) => {
            let resend =
                !values_empty && r.status.secrets_hash.as_deref() != Some(secrets_hash.as_str());
            let update = desired::changes(&desired, &remote, resend);
            if !update.is_empty() {
                let fields = changed_fields(&update);
                account
                    .client
                    .update_event_destination(&id, &update)
                    .await?;
                if in_sync {
                    info!(%id, fields, "reverted changes made outside Kubernetes");
                    r.event(
                        EventType::Normal,
                        "DriftCorrected",
                        format!("reverted changes to {fields} made outside Kubernetes in {id}"),
                    );
                } else {
                    info!(%id, fields, "updated destination");
                    r.event(
                        EventType::Normal,
                        "Updated",
                        format!("updated {fields} of {id}"),
                    );
                }
            }
            r.status.secrets_hash = Some(secrets_hash);
            r.status.uri = Some(remote.uri);
            r.status.created_at = Some(remote.created_at);
            account.mark_verified(&id);
        }
    }
    Ok(Synced::Ready {
        requeue: drift_requeue(r, &account),
    })
}

/// The account a resource uses: its own API key from `spec.apiKeyRef`, or the operator's.
async fn account_for(
    ctx: &Context,
    destination: &EventDestination,
    secrets_api: &Api<KubeSecret>,
) -> Result<Arc<Account>> {
    let key = match &destination.spec.api_key_ref {
        Some(reference) => secrets::api_key_from(
            secrets::resolve(secrets_api, &[reference])
                .await?
                .get(reference)?,
        ),
        None => ctx
            .accounts
            .default_key()
            .cloned()
            .ok_or(Error::ApiKeyMissing)?,
    };
    Ok(ctx.accounts.get(&key)?)
}

/// Creates the destination without ever leaving a twin: the intent is recorded in the status
/// before the POST, and a create whose outcome was lost is looked for in a listing before
/// another is sent.
async fn create(
    r: &mut Reconciliation<'_>,
    account: &Arc<Account>,
    desired: &ngrok_api::types::EventDestinationCreate,
    secrets_hash: &str,
) -> Result<()> {
    let fingerprint = desired::fingerprint(desired);
    if let Some(pending) = r.status.pending_create.clone() {
        match find_lost_create(r, account, &pending).await? {
            Some(found) => {
                info!(id = %found.id, "found the destination of an earlier create whose outcome was lost");
                record_created(r, account, &found);
                // It was created from the intent's content; the next pass updates any change.
                r.status.secrets_hash = if pending.fingerprint == fingerprint {
                    r.status.secrets_hash.clone()
                } else {
                    None
                };
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
    let uid = r.destination.uid();
    let other_pending = r.ctx.store.state().iter().any(|other| {
        other.uid() != uid
            && other.status.as_ref().is_some_and(|s| {
                s.id.is_none()
                    && s.pending_create
                        .as_ref()
                        .is_some_and(|p| p.fingerprint == fingerprint)
            })
    });
    if other_pending {
        return Err(Error::CreateQueued);
    }

    r.status.pending_create = Some(PendingCreate {
        started_at: Timestamp::now().to_string(),
        fingerprint,
    });
    r.status.secrets_hash = Some(secrets_hash.to_string());
    r.write_status(&Phase::Progressing {
        reason: "Creating",
        message: "Creating the destination in ngrok".into(),
    })
    .await?;

    match account.client.create_event_destination(desired).await {
        Ok(created) => {
            info!(id = %created.id, "created destination");
            record_created(r, account, &created);
            r.event(
                EventType::Normal,
                "Created",
                format!("created {} in ngrok", created.id),
            );
            Ok(())
        }
        Err(e) => {
            // Only a refusal (4xx) proves nothing was created; after anything else the create
            // may have happened, and the intent stays for the next pass to look for it.
            if e.status().is_some_and(|s| (400..500).contains(&s)) {
                r.status.pending_create = None;
            }
            Err(e.into())
        }
    }
}

fn record_created(r: &mut Reconciliation<'_>, account: &Account, created: &Remote) {
    r.status.id = Some(created.id.clone());
    r.status.uri = Some(created.uri.clone());
    r.status.created_at = Some(created.created_at.clone());
    r.status.pending_create = None;
    account.mark_verified(&created.id);
}

/// Looks for the destination a lost create may have made: same content, created after the
/// intent (less clock skew), and not any other resource's. More than one → a person decides.
async fn find_lost_create(
    r: &Reconciliation<'_>,
    account: &Account,
    pending: &PendingCreate,
) -> Result<Option<Remote>> {
    let since = pending
        .started_at
        .parse::<Timestamp>()
        .ok()
        .map(|t| t - CLOCK_SKEW);
    let snapshot = account.snapshot_after(Some(Instant::now())).await?;
    let claimed: std::collections::HashSet<String> = r
        .ctx
        .store
        .state()
        .iter()
        .filter(|other| other.uid() != r.destination.uid())
        .filter_map(|other| other.status.as_ref().and_then(|s| s.id.clone()))
        .collect();
    let mut candidates: Vec<&Remote> = snapshot
        .destinations
        .values()
        .filter(|d| desired::observed_fingerprint(d) == pending.fingerprint)
        .filter(|d| !claimed.contains(&d.id) && account.verified_at(&d.id).is_none())
        .filter(|d| match (since, d.created_at.parse::<Timestamp>()) {
            (Some(since), Ok(created)) => created >= since,
            _ => true,
        })
        .collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Error::AmbiguousCreate {
            candidates: many.iter().map(|d| d.id.clone()).collect(),
        }),
    }
}

/// Takes over an existing destination named by the adopt-id annotation, unless another
/// resource already manages it.
async fn adopt(r: &mut Reconciliation<'_>, account: &Account, id: &str) -> Result<Remote> {
    let uid = r.destination.uid();
    let owner = r.ctx.store.state().iter().find_map(|other| {
        let claims =
            other.uid() != uid && other.status.as_ref().and_then(|s| s.id.as_deref()) == Some(id);
        claims.then(|| {
            format!(
                "{}/{}",
                other.namespace().unwrap_or_default(),
                other.name_any()
            )
        })
    });
    if let Some(owner) = owner {
        return Err(Error::AdoptTargetInUse {
            id: id.to_string(),
            owner,
        });
    }
    let remote = match account.client.get_event_destination(id).await {
        Ok(remote) => remote,
        Err(e) if e.is_not_found() => {
            return Err(Error::AdoptTargetNotFound { id: id.to_string() });
        }
        Err(e) => return Err(e.into()),
    };
    r.status.id = Some(remote.id.clone());
    r.status.uri = Some(remote.uri.clone());
    r.status.created_at = Some(remote.created_at.clone());
    // Its secrets are unknown: the update that follows sends them.
    r.status.secrets_hash = None;
    r.event(
        EventType::Normal,
        "Adopted",
        format!("took over {id} from ngrok"),
    );
    Ok(remote)
}

async fn cleanup(destination: &EventDestination, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(destination, ctx);
    let result = delete_remote(&mut r).await;
    if let Err(error) = &result {
        r.write_status(&Phase::Failed(error)).await.ok();
    }
    r.publish_events().await;
    if result.is_ok() {
        // Gone from Kubernetes: forget everything kept about it.
        let object_ref = r.object_ref();
        ctx.failures
            .lock()
            .expect("failures lock")
            .remove(&object_ref);
        ctx.refused
            .lock()
            .expect("refused lock")
            .remove(&object_ref);
        ctx.last_account
            .lock()
            .expect("account lock")
            .remove(&object_ref);
        ctx.statuses
            .lock()
            .expect("statuses lock")
            .remove(&destination.uid().unwrap_or_default());
        ctx.secret_index.forget(&object_ref);
    }
    result.map(|()| Action::await_change())
}

async fn delete_remote(r: &mut Reconciliation<'_>) -> Result<()> {
    let destination = r.destination;
    let id = r.status.id.clone();
    let keep = match (destination.spec.deletion_policy, is_paused(destination)) {
        (DeletionPolicy::Retain, _) => Some("deletionPolicy is Retain"),
        (DeletionPolicy::Delete, true) => Some("the resource is paused"),
        (DeletionPolicy::Delete, false) => None,
    };
    if let Some(why) = keep {
        if let Some(id) = &id {
            info!(%id, why, "leaving the destination in ngrok");
            r.event(
                EventType::Normal,
                "Retained",
                format!("left {id} in ngrok: {why}"),
            );
        }
        return Ok(());
    }
    if id.is_none() && r.status.pending_create.is_none() {
        return Ok(());
    }

    let secrets_api = Api::<KubeSecret>::namespaced(
        r.ctx.client.clone(),
        &destination.namespace().unwrap_or_default(),
    );
    let remembered = r
        .ctx
        .last_account
        .lock()
        .expect("account lock")
        .get(&r.object_ref())
        .cloned();
    let account = match (
        account_for(r.ctx, destination, &secrets_api).await,
        remembered,
    ) {
        (Ok(account), _) => account,
        // The API key's Secret may go first when a whole namespace is deleted.
        (Err(_), Some(account)) => account,
        (Err(e), None) => return Err(e),
    };
    let id = match id {
        Some(id) => id,
        None => match find_lost_create(
            r,
            &account,
            &r.status.pending_create.clone().unwrap_or_default(),
        )
        .await?
        {
            Some(found) => found.id,
            None => return Ok(()),
        },
    };
    match account.client.delete_event_destination(&id).await {
        Ok(()) => info!(%id, "deleted destination"),
        Err(e) if e.is_not_found() => debug!(%id, "destination was already gone"),
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

fn is_paused(destination: &EventDestination) -> bool {
    destination
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The drift interval of a resource: its annotation, else the operator's `--drift-interval`.
fn drift_interval(r: &Reconciliation<'_>) -> Duration {
    r.destination
        .annotations()
        .get(DRIFT_INTERVAL_ANNOTATION)
        .and_then(|v| humantime::parse_duration(v).ok())
        .unwrap_or(r.ctx.drift_interval)
}

/// When to look at an in-sync resource again: the account's next drift pass, shared by all its
/// resources so that one listing serves them; a per-resource interval goes its own way.
fn drift_requeue(r: &Reconciliation<'_>, account: &Account) -> Duration {
    let interval = drift_interval(r);
    if interval != r.ctx.drift_interval {
        return interval.mul_f64(rand::random_range(0.9..=1.1));
    }
    account
        .next_drift_pass(interval)
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// The fields an update sets, for events and logs: `description, target`.
fn changed_fields(update: &ngrok_api::types::EventDestinationUpdate) -> String {
    let fields = [
        ("description", update.description.is_some()),
        ("metadata", update.metadata.is_some()),
        ("format", update.format.is_some()),
        ("target", update.target.is_some()),
    ];
    fields
        .iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
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
