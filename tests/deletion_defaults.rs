//! The deletion policy in effect (issue 20): a resource's own `spec.deletionPolicy`, else its
//! namespace's annotation `events.ngrok.io/default-deletion-policy`, else the operator's
//! `--default-deletion-policy`; `status.deletionPolicy` shows it, and deletion follows it.
//! On a private test bed: the operator watches every namespace (it reads their annotations).

mod common;

use common::{Operator, Options, PrivateCluster, destination, kinesis_role};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use ngrok_events_operator::crd::{DeletionPolicy, EventDestination};
use serde_json::json;

const DEFAULT_POLICY: &str = "events.ngrok.io/default-deletion-policy";

async fn annotate(namespaces: &Api<Namespace>, name: &str, policy: &str) {
    namespaces
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {DEFAULT_POLICY: policy}}})),
        )
        .await
        .expect("annotate the namespace");
}

/// Waits until the resource's status shows `policy` in effect.
async fn wait_policy(api: &Api<EventDestination>, name: &str, policy: DeletionPolicy) {
    testbed::wait_for(
        api,
        name,
        move |d: Option<&EventDestination>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.common.deletion_policy == Some(policy))
        },
        common::WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: status.deletionPolicy {policy}: {e}"));
}

/// Creates `name` in `namespace` (its own policy `own`), waits until Ready, returns its id.
async fn ready(op: &Operator, namespace: &str, name: &str, own: Option<&str>) -> String {
    let api = Api::<EventDestination>::namespaced(op.client.clone(), namespace);
    let mut spec = json!({"target": kinesis_role(name)});
    if let Some(own) = own {
        spec["deletionPolicy"] = json!(own);
    }
    api.create(&Default::default(), &destination(name, spec))
        .await
        .unwrap();
    let ready = common::wait_ready_reason(&api, name, "True", "Synced").await;
    ready.status.unwrap().common.id.unwrap()
}

async fn delete(op: &Operator, namespace: &str, name: &str) {
    let api = Api::<EventDestination>::namespaced(op.client.clone(), namespace);
    api.delete(name, &Default::default()).await.unwrap();
    testbed::wait_deleted(&api, name, common::WAIT)
        .await
        .unwrap_or_else(|e| panic!("{name} is not gone: {e}"));
}

#[tokio::test]
async fn the_resource_then_the_namespace_then_the_operator_decide_what_deletion_does() {
    let cluster = PrivateCluster::start().await;
    let op = Operator::start_with(
        "retaining",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            default_deletion_policy: DeletionPolicy::Retain,
            ..Default::default()
        },
    )
    .await;
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    let deleting = testbed::namespace(&cluster.client, "deleting")
        .await
        .unwrap();
    annotate(&namespaces, &deleting, "Delete").await;
    let typo = testbed::namespace(&cluster.client, "typo").await.unwrap();
    annotate(&namespaces, &typo, "delete").await;
    let ngrok = op.ngrok();
    let exists = |id: String| {
        let ngrok = ngrok.clone();
        async move {
            ngrok
                .get::<ngrok_api::types::EventDestination>(&id)
                .await
                .is_ok()
        }
    };

    // The operator's default: Retain.
    let kept = ready(&op, &op.namespace, "operator-default", None).await;
    wait_policy(&op.api(), "operator-default", DeletionPolicy::Retain).await;
    // The namespace's annotation over the operator's default.
    let gone = ready(&op, &deleting, "namespace-default", None).await;
    let in_deleting = Api::<EventDestination>::namespaced(cluster.client.clone(), &deleting);
    wait_policy(&in_deleting, "namespace-default", DeletionPolicy::Delete).await;
    // The resource's own over the namespace's.
    let own = ready(&op, &deleting, "own-retain", Some("Retain")).await;
    wait_policy(&in_deleting, "own-retain", DeletionPolicy::Retain).await;
    // An annotation that is neither Delete nor Retain keeps (a typo never deletes).
    let typo_kept = ready(&op, &typo, "typo-default", None).await;
    let in_typo = Api::<EventDestination>::namespaced(cluster.client.clone(), &typo);
    wait_policy(&in_typo, "typo-default", DeletionPolicy::Retain).await;

    delete(&op, &op.namespace, "operator-default").await;
    delete(&op, &deleting, "namespace-default").await;
    delete(&op, &deleting, "own-retain").await;
    delete(&op, &typo, "typo-default").await;
    assert!(exists(kept).await, "the operator's Retain kept it");
    assert!(
        !exists(gone.clone()).await,
        "the namespace's Delete deleted it"
    );
    assert!(exists(own).await, "its own Retain kept it");
    assert!(exists(typo_kept).await, "an unreadable annotation kept it");
    assert_eq!(
        op.requests("DELETE", "/event_destinations/{id}").len(),
        1,
        "only {gone} was deleted"
    );
    let retained = op.wait_event("operator-default", "Retained").await;
    assert!(
        retained.contains("--default-deletion-policy is Retain"),
        "{retained}"
    );
}

/// Annotating a namespace updates the status of its resources at once (no drift interval).
#[tokio::test]
async fn annotating_the_namespace_shows_the_new_policy_in_its_resources_status() {
    let cluster = PrivateCluster::start().await;
    let op = Operator::start_with(
        "annotated",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            ..Default::default()
        },
    )
    .await;
    ready(&op, &op.namespace, "d", None).await;
    wait_policy(&op.api(), "d", DeletionPolicy::Delete).await;
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    annotate(&namespaces, &op.namespace, "Retain").await;
    wait_policy(&op.api(), "d", DeletionPolicy::Retain).await;
    let id = op.wait_ready_id::<EventDestination>("d").await;
    op.delete_and_wait::<EventDestination>("d").await;
    assert!(
        op.ngrok()
            .get::<ngrok_api::types::EventDestination>(&id)
            .await
            .is_ok()
    );
}
