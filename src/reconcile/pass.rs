//! One pass over a resource, holding its work slot: the finalizer sends it to [`apply`] or to
//! `cleanup`. [`outcome`] is the whole of a pass that applies, read top to bottom: what the
//! annotations ask, observe, plan, act; [`apply`] then writes the status it calls for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};

use super::managed::{Managed, ManagedStatus};
use super::observe::{self, Observation, Observed};
use super::plan::{Mode, Outcome, Read};
use super::status::Reconciliation;
use super::{Context, FINALIZER, act, cleanup, plan};
use crate::accounts::Account;
use crate::annotations;
use crate::conditions::Phase;
use crate::error::{Error, Result};

/// A reconcile holding its work slot.
pub async fn admitted<K: Managed>(resource: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
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

/// A pass that applies: its [`outcome`], then the status and events that outcome calls for,
/// then when to look again.
async fn apply<K: Managed>(resource: &K, ctx: &Context) -> Result<Action> {
    let mut r = Reconciliation::new(resource, ctx);
    let (outcome, observation) = outcome(&mut r).await;
    if let (Outcome::Failed(Error::NgrokRejected(_) | Error::NgrokAuthentication(_)), Some(o)) =
        (&outcome, &observation)
    {
        // ngrok said no to exactly these inputs: asking again cannot change its mind.
        let inputs = (resource.meta().generation, o.prepared.inputs_hash.clone());
        K::state(ctx)
            .memory
            .with(&r.object_ref(), |entry| entry.refused = Some(inputs));
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
        K::state(ctx)
            .memory
            .with(&r.object_ref(), |entry| entry.created = None);
    }
    let memory = &K::state(ctx).memory;
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

/// Where the resource stands after this pass, and what was observed of it: the annotations
/// ([`annotations::asked`]), everything but ngrok ([`observe::inputs`]), ngrok as the plan
/// asks ([`plan::apply::read`], [`plan::apply::turn_wanted`], [`observe::remote`]), the plan
/// ([`plan::apply::plan`]), and its steps carried out ([`act::act`]). `r.status` records what was
/// done.
async fn outcome<K: Managed>(r: &mut Reconciliation<'_, K>) -> (Outcome, Option<Observation<K>>) {
    let annotations = r.resource.annotations();
    let asked = match annotations::asked(annotations, K::ID_PREFIX, r.ctx.drift_interval) {
        Ok(asked) => asked,
        Err(error) => return (Outcome::Failed(error), None),
    };
    if asked.mode == Mode::Paused {
        // Nothing to read, nothing to send, no account to hold.
        observe::paused(r);
        return (Outcome::Paused, None);
    }
    let observation: Observation<K> = match observe::inputs(r, asked).await {
        Ok(Observed::Inputs(observation)) => observation,
        Ok(Observed::Awaiting(others)) => return (plan::apply::awaiting(others), None),
        Err(error) => return (Outcome::Failed(error), None),
    };
    if observation.mode != Mode::Observe {
        r.status.common_mut().drift.clear();
    }
    let status = r.status.clone();
    let mut facts = observation.facts(r.resource, &status);
    let read = plan::apply::read(&facts);
    let turn_wanted = plan::apply::turn_wanted(&facts);
    let drift_check = matches!(read, Read::Listing(_) | Read::OwnDriftCheck(_));
    // The turn to create, if taken, holds its guards until the steps are carried out.
    let (seen, turn) = match observe::remote(r, &observation, read, turn_wanted).await {
        Ok(seen) => seen,
        Err(error) => return (Outcome::Failed(error), Some(observation)),
    };
    if drift_check {
        r.ctx.metrics.drift_checked(K::KIND);
    }
    facts.create_turn = turn.as_ref().map(|turn| turn.facts.clone());
    let plan = plan::apply::plan(&facts, seen);
    if let Outcome::Observing(drift) = &plan.outcome {
        r.status.common_mut().drift = drift.clone();
    }
    let outcome = match act::act(r, &observation, plan.steps, turn).await {
        Ok(()) => plan.outcome,
        Err(error) => Outcome::Failed(error),
    };
    (outcome, Some(observation))
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
