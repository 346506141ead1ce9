//! Reconciling resources with ngrok, in three steps, the same for every kind ([`Managed`]):
//!
//! 1. **observe** ([`observe`]): read what a decision needs — annotations, the account, the
//!    Secrets and destinations the request depends on, what this process remembers
//!    ([`memory`]), and from ngrok exactly what the plan asks for;
//! 2. **plan** ([`plan`]): a pure function decides — create, adopt, take the outcome of a lost
//!    create, update these fields, create again, move to another account, wait, or stall with a
//!    reason;
//! 3. **act** ([`act`]): carry the plan out, then write the status and events ([`status`]).
//!
//! Deletion is planned the same way ([`plan::cleanup_read`], [`plan::cleanup`], with the
//! lost-create rule of creation) and carried out by [`cleanup`]. What differs per kind is in `destination.rs` and
//! `subscription.rs`; what each field of a resource becomes in a request, in
//! [`crate::desired`].
//!
//! Cost model (what the benchmark measures):
//! - create: one POST; Kubernetes writes: the finalizer, the intent to create, the result;
//! - in sync: nothing, until the account's next drift pass, where one shared listing per kind
//!   (ceil(N/100) calls) serves every resource of the account; a resource with a drift interval
//!   of its own is off that pass, and each of its checks is one GET;
//! - spec or inputs changed: one GET, then one PATCH carrying only what differs.

mod act;
mod cleanup;
mod context;
mod destination;
mod managed;
mod memory;
mod observe;
pub mod plan;
mod status;
mod subscription;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use tracing::{debug, info, warn};

pub use context::{Context, SelectedNamespaces};
pub use managed::{Managed, ManagedStatus, Prepared, RemoteObject};
pub use memory::{Memory, RefusedInputs, Remembered};
pub use status::{FIELD_MANAGER, Reconciliation, fill_status, status_patch};

use crate::accounts::Account;
use crate::conditions::Phase;
use crate::error::{Error, Result};
use plan::Outcome;

/// Finalizer that holds a resource until its ngrok object is deleted (or retained).
pub const FINALIZER: &str = "events.ngrok.io/cleanup";

/// Entry point for the controller: waits for a work slot of its kind, in its namespace's turn
/// ([`crate::fairness`]), then dispatches to [`apply`] or [`cleanup`] via the finalizer.
///
/// The controller runs every reconcile at once (`concurrency(0)`); this gate is what bounds
/// the work. Until admitted a reconcile is this small future: the work is built, and boxed,
/// only then.
pub async fn reconcile<K: Managed>(resource: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = resource.namespace().unwrap_or_default();
    let gate = ctx.gate(K::KIND).clone();
    crate::fairness::admitted(&gate, &namespace, move || admitted(resource, ctx))
        .await
        // The controller is stopping: the next process (or leader) takes this one up.
        .unwrap_or_else(|| Ok(Action::await_change()))
}

/// A reconcile holding its work slot.
async fn admitted<K: Managed>(resource: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = resource.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", kind = K::KIND, namespace = %namespace, name = %resource.name_any());
    if !ctx.may_write() {
        // A deposed (or not yet confirmed) leader starts nothing.
        ctx.metrics.reconciled(K::KIND, Error::NotLeader.reason());
        return Err(Error::NotLeader);
    }
    let _timer = ctx.metrics.start_reconcile(K::KIND);
    let api = Api::<K>::namespaced(ctx.client.clone(), &namespace);
    let work = async {
        finalizer(&api, FINALIZER, resource, |event| async {
            match event {
                Finalizer::Apply(resource) => apply(resource.as_ref(), &ctx).await,
                Finalizer::Cleanup(resource) => {
                    let done = cleanup::cleanup(resource.as_ref(), &ctx).await?;
                    // The finalizer is removed next: only by the leader.
                    ctx.may_write().then_some(done).ok_or(Error::NotLeader)
                }
            }
        })
        .await
        .map_err(|e| match e {
            // What apply or cleanup returned: the error itself, for reasons, policy and metrics.
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        })
    };
    // Nothing of the pass outlives the lease: not a status write, not the finalizer's removal.
    let result = tracing::Instrument::instrument(ctx.fenced(work), span).await;
    // Counted here, not in the error policy: the controller may start the next pass of this
    // resource before it runs the policy, and the count must not lag behind what it shows.
    let counted = result.as_ref().map_or_else(Error::reason, |_| "success");
    ctx.metrics.reconciled(K::KIND, counted);
    result
}

/// Observe, plan, act; then write the status the outcome calls for.
async fn apply<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(resource, ctx);
    let (outcome, observation) = match observe::asked(resource, ctx) {
        Err(error) => (Outcome::Failed(error), None),
        // Nothing to read, nothing to send, no account to hold.
        Ok(asked) if asked.mode == plan::Mode::Paused => {
            observe::paused(&r);
            (Outcome::Paused, None)
        }
        Ok(asked) => match observe::inputs(&r, asked).await {
            Err(error) => (Outcome::Failed(error), None),
            Ok(observation) => {
                let outcome = observe_plan_act(&mut r, &observation).await;
                (outcome, Some(observation))
            }
        },
    };
    if let (Outcome::Failed(Error::NgrokRejected(_) | Error::NgrokAuthentication(_)), Some(o)) =
        (&outcome, &observation)
    {
        // ngrok said no to exactly these inputs: asking again cannot change its mind.
        let inputs = (resource.meta().generation, o.prepared.inputs_hash.clone());
        K::memory(ctx).with(&r.object_ref(), |entry| entry.refused = Some(inputs));
    }
    // A fenced replica writes no status either: the leader does.
    let fenced = matches!(&outcome, Outcome::Failed(e) if e.is_fenced());
    let phase = match &outcome {
        // ngrok refused exactly this before: the Stalled status stays as it is.
        Outcome::Unchanged => None,
        _ if fenced => None,
        Outcome::Ready => Some(Phase::Ready),
        Outcome::Paused => Some(Phase::Paused),
        Outcome::Observing(drift) => Some(Phase::Observing {
            differences: drift.iter().map(|d| d.path.clone()).collect(),
        }),
        Outcome::Failed(error) => Some(Phase::Failed(error)),
    };
    if let Some(phase) = phase {
        let written = r.write_status(&phase).await;
        r.publish_events().await;
        written?;
        // The status now records what was created.
        K::memory(ctx).with(&r.object_ref(), |entry| entry.created = None);
    }
    let memory = K::memory(ctx);
    match (outcome, observation) {
        (Outcome::Failed(error), _) => Err(error),
        (Outcome::Ready, Some(observation)) => {
            memory.with(&r.object_ref(), |entry| entry.failures = 0);
            Ok(Action::requeue(drift_requeue(
                observation.interval,
                ctx,
                &observation.account,
            )))
        }
        (Outcome::Observing(_), Some(observation)) => Ok(Action::requeue(observation.interval)),
        _ => Ok(Action::await_change()),
    }
}

/// Reads ngrok as the plan needs, plans, and carries the plan out. `r.status` records what
/// was done; the outcome says where the resource stands.
async fn observe_plan_act<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    observation: &observe::Observation<K>,
) -> Outcome {
    if observation.mode != plan::Mode::Observe {
        r.status.common_mut().drift.clear();
    }
    let status = r.status.clone();
    let facts = observation.facts(r.resource, &status);
    let read = plan::read(&facts);
    let drift_check = matches!(read, plan::Read::Listing(_) | plan::Read::OwnDriftCheck(_));
    // `search`: held until the steps are carried out (see `observe::remote`).
    let (seen, search) = match observe::remote(r, observation, read).await {
        Ok(seen) => seen,
        Err(error) => return Outcome::Failed(error),
    };
    if drift_check {
        r.ctx.metrics.drift_checked(K::KIND);
    }
    let plan = plan::plan(&facts, seen);
    if let Outcome::Observing(drift) = &plan.outcome {
        r.status.common_mut().drift = drift.clone();
    }
    match act::act(r, observation, plan.steps, search).await {
        Ok(()) => plan.outcome,
        Err(error) => Outcome::Failed(error),
    }
}

/// What the controller does after a failed reconcile: a person must act → wait for a change;
/// otherwise retry with a per-resource backoff that grows until a reconcile succeeds.
pub fn error_policy<K: Managed>(resource: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let (kind, namespace, name) = (
        K::KIND,
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    );
    if let Error::RemoteFieldNotModeled { .. } = error {
        // Removing the field in ngrok also ends it, and triggers nothing: look again now and then.
        warn!(kind, namespace, name, reason = error.reason(), error = %error.message(), "stalled until the resource names the field or ngrok drops it");
        return Action::requeue(Duration::from_secs(300));
    }
    if error.is_stalled() {
        warn!(kind, namespace, name, reason = error.reason(), error = %error.message(), "stalled until the resource or a Secret it uses changes");
        return Action::await_change();
    }
    let object_ref = kube::runtime::reflector::ObjectRef::from_obj(resource.as_ref());
    let attempt = K::memory(&ctx).with(&object_ref, |entry| {
        entry.failures = entry.failures.saturating_add(1);
        entry.failures
    });
    // Waiting for another resource's create, or for the lease, is expected to end soon.
    let queued = matches!(error, Error::CreateQueued) || error.is_fenced();
    let delay = if queued {
        // Retrying faster (but still backing off, in case the wait is itself stuck) keeps
        // such bursts short.
        backoff_delay(attempt, Duration::from_millis(200), Duration::from_secs(10))
    } else {
        backoff_delay(attempt, Duration::from_secs(1), Duration::from_secs(300))
    };
    if error.is_fenced() {
        // Around a slow renewal of the lease, or on a replica that lost it.
        info!(kind, namespace, name, reason = error.reason(), retry_in = ?delay, "waiting for the leader lease");
    } else if queued {
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
