//! Fair share of the operator's work and of each ngrok account's budget among namespaces.
//!
//! Two things are scarce: the reconciles that may work at once ([`Gate`], `--concurrency` per
//! kind) and each account's ngrok requests ([`FairBudget`], `--api-rate-limit`). Both are
//! handed out round-robin across the namespaces that are waiting, the way Kubernetes' API
//! Priority and Fairness serves its queues and controller-runtime's priority queue lets
//! waiting items through: one namespace with thousands of pending reconciles delays another
//! namespace's first request by about one turn, not by its whole queue.
//!
//! A reconcile that waits for an ngrok token holds no work slot: it gives its slot back while
//! it waits ([`off_slot`]) and takes one again, ahead of new admissions, once it holds the
//! token. At most [`PARK_BOUND`] reconciles of a namespace may be waiting that way before its
//! further reconciles wait at admission, where a waiter is a few hundred bytes.
//!
//! Who is asking is carried by a task-local [`Tenant`], set by [`admitted`]; a caller outside
//! a reconcile (import, the account's identity check from a test) is an anonymous tenant.

mod budget;
mod gate;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::{Arc, Mutex};

pub use budget::{FairBudget, budget_waiters};
pub use gate::{Gate, Parked, Slot};

/// Reconciles of one namespace (per kind) that may be waiting for an ngrok token, beyond
/// which the namespace's further reconciles wait at admission.
pub const PARK_BOUND: usize = 4;

tokio::task_local! {
    static TENANT: Tenant;
}

/// The reconcile running in this task: its namespace and its work slot.
#[derive(Clone)]
struct Tenant {
    namespace: Arc<str>,
    gate: Gate,
    slot: Arc<Mutex<Option<Slot>>>,
    /// Whether it waits off its slot now.
    parked: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Waits for a work slot of `gate` for a reconcile in `namespace`, then runs the future `work`
/// makes. The work future is built and boxed only once admitted, so that a waiter is small.
///
/// `None`: the gate closed (the controller is stopping) before the work was admitted, or
/// while it waited off its slot for ngrok's budget — a point where no request is in flight,
/// and where stopping is what a crash would do, which every step is safe against. Without
/// this, stopping would wait for every reconcile of every namespace queued on the budget.
pub async fn admitted<F, T>(gate: &Gate, namespace: &str, work: impl FnOnce() -> F) -> Option<T>
where
    F: Future<Output = T> + Send + 'static,
{
    let namespace: Arc<str> = namespace.into();
    let slot = gate.admit(&namespace).await?;
    let tenant = Tenant {
        namespace,
        gate: gate.clone(),
        slot: Arc::new(Mutex::new(Some(slot))),
        parked: Arc::new(tokio::sync::watch::Sender::new(false)),
    };
    let mut parked = tenant.parked.subscribe();
    let abandoned = async move {
        gate.closed().await;
        parked.wait_for(|parked| *parked).await.ok();
    };
    let work: std::pin::Pin<Box<dyn Future<Output = T> + Send>> = Box::pin(work());
    tokio::select! {
        output = TENANT.scope(tenant, work) => Some(output),
        () = abandoned => None,
    }
}

/// The namespace of the reconcile running in this task; `None` outside a reconcile.
pub fn current_namespace() -> Option<Arc<str>> {
    TENANT.try_with(|t| t.namespace.clone()).ok()
}

/// Runs `wait` without the current reconcile's work slot: the slot goes to another reconcile
/// meanwhile, and is taken again (before any new admission) when `wait` ends. Outside a
/// reconcile it just runs `wait`.
pub async fn off_slot<F: Future>(wait: F) -> F::Output {
    let Ok(tenant) = TENANT.try_with(Clone::clone) else {
        return wait.await;
    };
    // Counted as parked before the slot is freed, so that the freed slot does not go to one
    // more reconcile of a namespace already at its bound.
    let parked = tenant.gate.park(&tenant.namespace);
    let released = tenant.slot.lock().expect("slot lock").take();
    drop(released);
    tenant.parked.send_replace(true);
    let output = wait.await;
    tenant.parked.send_replace(false);
    let slot = tenant.gate.readmit().await;
    *tenant.slot.lock().expect("slot lock") = Some(slot);
    drop(parked);
    output
}
