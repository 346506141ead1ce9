//! Reconciling resources with ngrok, in three steps, the same for every kind ([`Managed`]);
//! one pass reads top to bottom in `pass::outcome`:
//!
//! 1. **observe** ([`observe`]): read what a decision needs — annotations, the account, the
//!    Secrets and destinations the request depends on, what this process remembers
//!    ([`memory`]), and from ngrok exactly what the plan asks for;
//! 2. **plan** ([`plan`]): a pure function decides — create, adopt, take the outcome of a lost
//!    create, update these fields, create again, move to another account, wait, or stall with a
//!    reason;
//! 3. **act** ([`act`]): carry the plan out, then write the status and events ([`status`]).
//!
//! Deletion is planned the same way ([`plan::deletion::cleanup_read`], [`plan::deletion::cleanup`], with the
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
mod pass;
pub mod plan;
mod status;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{debug, info, warn};

pub use context::{Context, KindState, SelectedNamespaces};
pub use managed::{Inputs, Managed, ManagedStatus, Prepared, RemoteObject};
pub use memory::{Memory, RefusedInputs, Remembered};
pub use status::{FIELD_MANAGER, Reconciliation, fill_status, status_patch};

use crate::error::{Error, Result};

/// Finalizer that holds a resource until its ngrok object is deleted (or retained).
pub const FINALIZER: &str = "events.ngrok.io/cleanup";

/// Entry point for the controller: waits for a work slot of its kind, in its namespace's turn
/// ([`crate::fairness`]), then makes one pass (`pass.rs`): apply or [`cleanup`], as the
/// finalizer says.
///
/// The controller runs every reconcile at once (`concurrency(0)`); this gate is what bounds
/// the work. Until admitted a reconcile is this small future: the work is built, and boxed,
/// only then.
pub async fn reconcile<K: Managed>(resource: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = resource.namespace().unwrap_or_default();
    let gate = K::state(&ctx).gate.clone();
    crate::fairness::admitted(&gate, &namespace, move || pass::admitted(resource, ctx))
        .await
        // The controller is stopping: the next process (or leader) takes this one up.
        .unwrap_or_else(|| Ok(Action::await_change()))
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
    let attempt = K::state(&ctx).memory.with(&object_ref, |entry| {
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
