//! The fair queues on their own: round-robin order, returning reconciles first, the park
//! bound, and a budget's tokens shared across namespaces.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ngrok_api::{Budget, Gcra};
use prometheus_client::metrics::gauge::Gauge;

use super::*;

type Order = Arc<Mutex<Vec<String>>>;

fn ns(name: &str) -> Arc<str> {
    name.into()
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Spawns a reconcile of `namespace` that records its name once admitted and ends at once.
fn spawn_admission(gate: &Gate, namespace: &str, name: &str, order: &Order) {
    let (gate, namespace, name, order) =
        (gate.clone(), ns(namespace), name.to_string(), order.clone());
    tokio::spawn(async move {
        let _slot = gate.admit(&namespace).await.unwrap();
        order.lock().unwrap().push(name);
    });
}

#[tokio::test]
async fn a_freed_slot_goes_round_robin_across_namespaces() {
    let gate = Gate::new(1, Gauge::default());
    let order = Order::default();
    let held = gate.admit(&ns("a")).await.unwrap();
    for name in ["a1", "a2", "a3"] {
        spawn_admission(&gate, "a", name, &order);
    }
    settle().await;
    spawn_admission(&gate, "b", "b1", &order);
    settle().await;
    assert_eq!(gate.waiting(), 4);
    drop(held);
    settle().await;
    assert_eq!(*order.lock().unwrap(), ["a1", "b1", "a2", "a3"]);
    assert_eq!((gate.working(), gate.waiting()), (0, 0));
}

#[tokio::test]
async fn a_returning_reconcile_goes_before_new_admissions() {
    let gate = Gate::new(1, Gauge::default());
    let order = Order::default();
    let held = gate.admit(&ns("a")).await.unwrap();
    spawn_admission(&gate, "b", "new", &order);
    settle().await;
    tokio::spawn({
        let (gate, order) = (gate.clone(), order.clone());
        async move {
            let _slot = gate.readmit().await;
            order.lock().unwrap().push("returning".into());
        }
    });
    settle().await;
    drop(held);
    settle().await;
    assert_eq!(*order.lock().unwrap(), ["returning", "new"]);
}

#[tokio::test]
async fn a_namespace_at_its_park_bound_waits_at_admission_and_others_pass() {
    let gate = Gate::with_park_bound(4, 1, Gauge::default());
    let order = Order::default();
    let slot = gate.admit(&ns("a")).await.unwrap();
    let parked = gate.park(&ns("a"));
    drop(slot);
    spawn_admission(&gate, "a", "a2", &order);
    settle().await;
    spawn_admission(&gate, "b", "b1", &order);
    settle().await;
    assert_eq!(
        *order.lock().unwrap(),
        ["b1"],
        "a waits while one of its own is parked"
    );
    drop(parked);
    settle().await;
    assert_eq!(*order.lock().unwrap(), ["b1", "a2"]);
}

#[tokio::test]
async fn off_slot_frees_the_slot_for_another_namespace_and_takes_one_back() {
    let gate = Gate::new(1, Gauge::default());
    let order = Order::default();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let waiting = tokio::spawn({
        let (gate, order) = (gate.clone(), order.clone());
        async move {
            admitted(&gate, "a", move || async move {
                off_slot(released).await.unwrap();
                order.lock().unwrap().push("a".into());
            })
            .await
        }
    });
    settle().await;
    spawn_admission(&gate, "b", "b", &order);
    settle().await;
    assert_eq!(
        *order.lock().unwrap(),
        ["b"],
        "b worked while a waited off its slot"
    );
    release.send(()).unwrap();
    waiting.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["b", "a"]);
    assert_eq!(gate.working(), 0);
}

/// Real time: the limiter keeps its own clock.
#[tokio::test]
async fn budget_tokens_go_round_robin_across_namespaces() {
    // A token every 50 ms; the burst's one token is spent first.
    let budget = FairBudget::new(Gcra::new(1200, 1).unwrap());
    budget.ready().await;
    let gate = Gate::new(0, Gauge::default());
    let order = Order::default();
    let spawn = |namespace: &'static str| {
        let (gate, budget, order) = (gate.clone(), budget.clone(), order.clone());
        tokio::spawn(async move {
            admitted(&gate, namespace, move || async move {
                budget.ready().await;
                order.lock().unwrap().push(namespace.to_string());
            })
            .await
        })
    };
    let mut tasks: Vec<_> = (0..4).map(|_| spawn("a")).collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    tasks.push(spawn("b"));
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["a", "b", "a", "a", "a"]);
    assert_eq!(budget.waiting(), 0);
}

#[tokio::test]
async fn budget_fast_path_when_nobody_waits() {
    let budget = FairBudget::new(Gcra::new(60, 3).unwrap());
    let started = std::time::Instant::now();
    for _ in 0..3 {
        budget.ready().await;
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(budget.waiting(), 0);
}

#[tokio::test]
async fn a_closed_gate_admits_nothing_and_abandons_what_waits_off_its_slot() {
    let gate = Gate::new(1, Gauge::default());
    let held = gate.admit(&ns("a")).await.unwrap();
    let waiting = tokio::spawn({
        let gate = gate.clone();
        async move { gate.admit(&ns("b")).await.is_some() }
    });
    settle().await;
    let (_never, parked_forever) = tokio::sync::oneshot::channel::<()>();
    drop(held);
    settle().await;
    let parked = tokio::spawn({
        let gate = gate.clone();
        async move {
            admitted(&gate, "c", move || async move {
                off_slot(parked_forever).await.ok();
            })
            .await
        }
    });
    settle().await;
    gate.close();
    waiting.await.unwrap();
    assert!(
        parked.await.unwrap().is_none(),
        "a parked reconcile is abandoned"
    );
    assert!(gate.admit(&ns("d")).await.is_none());
}
