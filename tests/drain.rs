//! `drain` (issue 20): before an uninstall, Retain removes the operator's finalizers once the
//! operator is stopped (every ngrok object stays), Delete deletes every resource through the
//! running operator. Either way, deleting the namespace afterwards never waits on a finalizer.
//! The chart's pre-delete hook running it under `helm uninstall` is proven on the node tier
//! (`tests/chart/test_node_e2e.py`).

mod common;

use std::time::Duration;

use common::{Operator, destination, kinesis_role, subscription};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use ngrok_events_operator::crd::{DeletionPolicy, EventDestination, EventSubscription};
use ngrok_events_operator::drain::{Drain, drain};
use serde_json::json;

/// A destination and a subscription of it, both Ready; returns their ngrok ids.
async fn resources(op: &Operator) -> (String, String) {
    op.create(&destination("d", json!({"target": kinesis_role("d")})))
        .await;
    op.create(&subscription(
        "s",
        json!({"sources": [{"type": "http_request_complete.v0"}], "destinationRefs": [{"name": "d"}]}),
    ))
    .await;
    (
        op.wait_ready_id::<EventDestination>("d").await,
        op.wait_ready_id::<EventSubscription>("s").await,
    )
}

fn drain_of(op: &Operator, policy: DeletionPolicy, operator: Option<(String, String)>) -> Drain {
    Drain {
        policy,
        namespace: Some(op.namespace.clone()),
        operator,
        timeout: Duration::from_secs(30),
    }
}

/// Deletes the test's namespace and waits until it is gone: nothing holds it.
async fn namespace_goes(op: &Operator) {
    let namespaces = Api::<Namespace>::all(op.client.clone());
    namespaces
        .delete(&op.namespace, &Default::default())
        .await
        .unwrap();
    testbed::wait_deleted(&namespaces, &op.namespace, common::WAIT)
        .await
        .expect("the namespace is deleted without the operator");
}

#[tokio::test]
async fn retain_stops_the_operator_removes_finalizers_and_keeps_every_ngrok_object() {
    let mut op = Operator::start("drain-retain").await;
    let (destination_id, subscription_id) = resources(&op).await;
    // The operator's Deployment as the chart makes it (no pods: this test bed has no node);
    // the drain scales it to 0 before it touches a finalizer.
    let deployments = Api::<Deployment>::namespaced(op.client.clone(), &op.namespace);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "operator"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "operator"}},
                 "template": {"metadata": {"labels": {"app": "operator"}},
                              "spec": {"containers": [{"name": "operator", "image": "operator"}]}}},
    }))
    .unwrap();
    deployments
        .create(&Default::default(), &deployment)
        .await
        .unwrap();
    // The in-process operator stands for the Deployment's pod: stopped as scaling stops it.
    op.stop_controller().await;
    op.emulator.clear_requests();

    let operator = Some((op.namespace.clone(), "operator".to_string()));
    drain(&op.client, &drain_of(&op, DeletionPolicy::Retain, operator))
        .await
        .unwrap();
    let scaled = deployments.get("operator").await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(0));
    for finalizers in [
        op.api::<EventDestination>()
            .get("d")
            .await
            .unwrap()
            .metadata
            .finalizers,
        op.api::<EventSubscription>()
            .get("s")
            .await
            .unwrap()
            .metadata
            .finalizers,
    ] {
        assert!(finalizers.unwrap_or_default().is_empty());
    }
    namespace_goes(&op).await;
    assert_eq!(op.writes(), 0, "nothing was written to ngrok");
    let ngrok = op.ngrok();
    ngrok
        .get::<ngrok_api::types::EventDestination>(&destination_id)
        .await
        .unwrap();
    ngrok
        .get::<ngrok_api::types::EventSubscription>(&subscription_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_deletes_every_resource_and_its_ngrok_object_through_the_operator() {
    let op = Operator::start("drain-delete").await;
    let (destination_id, subscription_id) = resources(&op).await;

    drain(&op.client, &drain_of(&op, DeletionPolicy::Delete, None))
        .await
        .unwrap();
    assert!(
        op.api::<EventDestination>()
            .get_opt("d")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        op.api::<EventSubscription>()
            .get_opt("s")
            .await
            .unwrap()
            .is_none()
    );
    let ngrok = op.ngrok();
    assert!(
        ngrok
            .get::<ngrok_api::types::EventDestination>(&destination_id)
            .await
            .is_err()
    );
    assert!(
        ngrok
            .get::<ngrok_api::types::EventSubscription>(&subscription_id)
            .await
            .is_err()
    );
    namespace_goes(&op).await;
}

/// Without an operator to delete them, Delete says which resources are left, and why it may be.
#[tokio::test]
async fn delete_without_a_running_operator_names_what_is_left() {
    let mut op = Operator::start("drain-stuck").await;
    resources(&op).await;
    op.stop_controller().await;
    let mut stuck = drain_of(&op, DeletionPolicy::Delete, None);
    stuck.timeout = Duration::from_secs(2);
    let error = drain(&op.client, &stuck).await.unwrap_err().to_string();
    assert!(error.contains("is the operator running?"), "{error}");
    assert!(error.contains(&format!("{}/s", op.namespace)), "{error}");
}
