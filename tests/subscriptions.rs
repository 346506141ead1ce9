//! EventSubscriptions against the real API server and the emulator: the lifecycle, the order in
//! which subscriptions and their destinations come and go, following a re-created destination,
//! adoption and pause.

mod common;

use std::time::Duration;

use common::{Kind, Operator, Options, destination, kinesis_role, ready_message, subscription};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;

const SUBSCRIPTIONS: &str = "/event_subscriptions";
const SUBSCRIPTION: &str = "/event_subscriptions/{id}";
const DESTINATION: &str = "/event_destinations/{id}";

/// A destination `name` that is Ready, and its id.
async fn ready_destination(op: &Operator, name: &str) -> String {
    op.create(&destination(name, json!({"target": kinesis_role(name)})))
        .await;
    op.wait_ready_id::<EventDestination>(name).await
}

fn traffic(refs: &[&str]) -> EventSubscription {
    subscription(
        "traffic",
        json!({
            "description": "all HTTP traffic",
            "sources": [{"type": "http_request_complete.v0"}, {"type": "ip_policy_created.v0"}],
            "destinationRefs": refs.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
        }),
    )
}

fn sent_ids(op: &Operator, id: &str) -> Vec<String> {
    let object = op.emulator.object(id).expect("subscription in ngrok");
    object["destination_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_subscription_is_created_updated_and_deleted() {
    let op = Operator::start("sub-lifecycle").await;
    let audit = ready_destination(&op, "audit").await;
    op.create(&traffic(&["audit"])).await;
    let ready = op.wait_ready::<EventSubscription>("traffic").await;
    let status = ready.status.unwrap();
    let id = status.common.id.unwrap();
    assert!(id.starts_with("esb_"), "{id}");
    assert_eq!(
        status.common.uri.as_deref(),
        Some(format!("{}/event_subscriptions/{id}", op.emulator.base_url()).as_str())
    );
    assert_eq!(status.destination_ids, std::slice::from_ref(&audit));
    assert_eq!(
        (status.source_count, status.destination_count),
        (Some(2), Some(1))
    );
    let remote = op.emulator.object(&id).unwrap();
    assert_eq!(remote["description"], "all HTTP traffic");
    assert_eq!(
        remote["sources"],
        json!([{"type": "http_request_complete.v0"}, {"type": "ip_policy_created.v0"}])
    );
    assert_eq!(sent_ids(&op, &id), std::slice::from_ref(&audit));
    op.wait_event("traffic", "Created").await;
    // Counted apart from destinations, without per-object labels.
    assert_eq!(
        op.metric(r#"ngrok_events_operator_resources{kind="EventSubscription",state="ready"}"#),
        1.0
    );
    assert!(
        op.metric(
            r#"ngrok_events_operator_reconciles_total{kind="EventSubscription",result="success"}"#
        ) >= 1.0
    );

    // A second destination managed elsewhere, named by id; one source fewer; a new description.
    let ngrok = op.ngrok();
    let elsewhere = ngrok
        .create::<ngrok_api::types::EventDestination>(
            &ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/other".into(),
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::123456789012:role/ngrok".into(),
                    }),
                },
            )),
        )
        .await
        .unwrap()
        .id;
    let posts = op.requests("POST", SUBSCRIPTIONS).len();
    op.patch::<EventSubscription>(
        "traffic",
        json!({"spec": {
            "description": "HTTP traffic",
            "sources": [{"type": "http_request_complete.v0"}],
            "destinationIds": [elsewhere],
        }}),
    )
    .await;
    let updated = op.wait_ready::<EventSubscription>("traffic").await;
    assert_eq!(
        updated.status.as_ref().unwrap().common.id.as_deref(),
        Some(id.as_str())
    );
    let remote = op.emulator.object(&id).unwrap();
    assert_eq!(remote["description"], "HTTP traffic");
    assert_eq!(
        remote["sources"],
        json!([{"type": "http_request_complete.v0"}])
    );
    assert_eq!(sent_ids(&op, &id), [audit.clone(), elsewhere.clone()]);
    assert_eq!(
        op.requests("POST", SUBSCRIPTIONS).len(),
        posts,
        "updated, not re-created"
    );
    let note = op.wait_event("traffic", "Updated").await;
    assert!(
        note.contains("description") && note.contains("sources") && note.contains("destinations"),
        "{note}"
    );

    op.delete_and_wait::<EventSubscription>("traffic").await;
    assert!(op.emulator.subscription_ids().is_empty());
    // Its destinations are untouched.
    assert!(op.emulator.object(&audit).is_some());
    assert!(op.emulator.object(&elsewhere).is_some());
    op.stop().await;
}

#[tokio::test]
async fn a_subscription_waits_for_its_destination_to_exist_and_be_ready() {
    let op = Operator::start("sub-before-dest").await;
    op.create(&traffic(&["later"])).await;
    let waiting = op
        .wait_ready_status::<EventSubscription>("traffic", "False", "DestinationNotReady")
        .await;
    assert_eq!(
        ready_message(&waiting),
        r#"waiting for EventDestination "later", which does not exist"#
    );
    assert!(
        waiting.has_condition("Reconciling", "True", "DestinationNotReady"),
        "waiting is progress, not a stall"
    );
    op.wait_event("traffic", "DestinationNotReady").await;
    assert!(
        op.requests("POST", SUBSCRIPTIONS).is_empty(),
        "no call to ngrok"
    );

    // The destination appears and becomes Ready: the subscription follows without a nudge.
    let later = ready_destination(&op, "later").await;
    let ready = op.wait_ready::<EventSubscription>("traffic").await;
    assert_eq!(ready.status.unwrap().destination_ids, [later]);
    assert_eq!(op.requests("POST", SUBSCRIPTIONS).len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn a_destination_in_use_is_deleted_only_once_its_subscription_is_gone() {
    let op = Operator::start("sub-dest-in-use").await;
    let audit = ready_destination(&op, "audit").await;
    op.create(&traffic(&["audit"])).await;
    op.wait_ready::<EventSubscription>("traffic").await;

    op.api::<EventDestination>()
        .delete("audit", &DeleteParams::default())
        .await
        .unwrap();
    let held: EventDestination = op
        .wait_ready_status("audit", "False", "DestinationInUse")
        .await;
    let message = ready_message(&held);
    assert!(
        message.contains(&format!("EventSubscription {}/traffic", op.namespace)),
        "{message}"
    );
    let note = op.wait_event("audit", "DestinationInUse").await;
    assert!(note.contains("traffic"), "{note}");
    assert!(
        op.requests("DELETE", DESTINATION).is_empty(),
        "no delete is sent that ngrok would refuse"
    );
    assert!(op.emulator.object(&audit).is_some());

    // The subscription goes: the destination follows, without a nudge.
    op.api::<EventSubscription>()
        .delete("traffic", &DeleteParams::default())
        .await
        .unwrap();
    op.wait_deleted::<EventDestination>("audit").await;
    assert!(op.emulator.destination_ids().is_empty());
    assert!(op.emulator.subscription_ids().is_empty());
    op.stop().await;
}

#[tokio::test]
async fn deleting_both_at_once_deletes_in_the_right_order() {
    let op = Operator::start("sub-both").await;
    ready_destination(&op, "audit").await;
    op.create(&traffic(&["audit"])).await;
    op.wait_ready::<EventSubscription>("traffic").await;

    // As `kubectl delete -f` of a file listing the destination first.
    op.api::<EventDestination>()
        .delete("audit", &DeleteParams::default())
        .await
        .unwrap();
    op.delete_and_wait::<EventSubscription>("traffic").await;
    op.wait_deleted::<EventDestination>("audit").await;
    assert!(op.emulator.destination_ids().is_empty());
    assert!(op.emulator.subscription_ids().is_empty());
    let refused: Vec<_> = op
        .requests("DELETE", DESTINATION)
        .into_iter()
        .filter(|r| r.status != Some(204))
        .collect();
    assert!(refused.is_empty(), "ngrok refused a delete: {refused:?}");
    op.stop().await;
}

#[tokio::test]
async fn deleting_the_namespace_deletes_subscription_then_destination() {
    let op = Operator::start("sub-ns").await;
    // The API key in a Secret of the namespace, which goes away with it.
    op.create_secret("ngrok", &[("api-key", common::API_KEY)])
        .await;
    let key = json!({"name": "ngrok", "key": "api-key"});
    op.create(&destination(
        "audit",
        json!({"apiKeyRef": key, "target": kinesis_role("audit")}),
    ))
    .await;
    op.wait_ready::<EventDestination>("audit").await;
    let mut sub = traffic(&["audit"]);
    sub.spec.api_key_ref = serde_json::from_value(key).unwrap();
    op.create(&sub).await;
    op.wait_ready::<EventSubscription>("traffic").await;

    let namespaces = Api::<Namespace>::all(op.client.clone());
    namespaces
        .delete(&op.namespace, &Default::default())
        .await
        .unwrap();
    testbed::wait_deleted(&namespaces, &op.namespace, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(op.emulator.subscription_ids().is_empty());
    assert!(op.emulator.destination_ids().is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_destination_re_created_by_drift_repair_is_followed() {
    let op = Operator::start_with(
        "sub-follow",
        Options::with_drift_interval(Duration::from_secs(2)),
    )
    .await;
    let old = ready_destination(&op, "audit").await;
    op.create(&traffic(&["audit"])).await;
    let id = op.wait_ready_id::<EventSubscription>("traffic").await;

    // Deleted in ngrok behind the operator's back (ngrok itself would refuse while the
    // subscription names it; the emulator's admin surface does not ask).
    assert!(op.emulator.delete_object(&old));
    let new = testbed::eventually("the destination re-created", common::WAIT, || async {
        let d = op.api::<EventDestination>().get("audit").await.ok()?;
        d.status.and_then(|s| s.common.id).filter(|id| *id != old)
    })
    .await
    .unwrap();
    testbed::eventually("the subscription follows", common::WAIT, || async {
        let s = op.api::<EventSubscription>().get("traffic").await.ok()?;
        (s.status?.destination_ids == [new.clone()]).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        sent_ids(&op, &id),
        std::slice::from_ref(&new),
        "PATCHed in place"
    );
    assert_eq!(op.emulator.subscription_ids(), [id]);
    op.stop().await;
}

#[tokio::test]
async fn a_subscription_is_adopted_and_paused_like_a_destination() {
    let op = Operator::start_with("sub-adopt", Options::adopting()).await;
    let audit = ready_destination(&op, "audit").await;
    let ngrok = op.ngrok();
    let existing = ngrok
        .create::<ngrok_api::types::EventSubscription>(
            &ngrok_api::types::EventSubscriptionCreate::new(
                vec![ngrok_api::types::EventSourceReplace::new(
                    "http_request_complete.v0",
                )],
                vec![audit.clone()],
            ),
        )
        .await
        .unwrap()
        .id;
    let posts = op.requests("POST", SUBSCRIPTIONS).len();
    let mut adopter = traffic(&["audit"]);
    adopter.metadata.annotations =
        Some([("events.ngrok.io/adopt-id".to_string(), existing.clone())].into());
    op.create(&adopter).await;
    let ready = op.wait_ready::<EventSubscription>("traffic").await;
    assert_eq!(
        ready.status.unwrap().common.id.as_deref(),
        Some(existing.as_str())
    );
    assert_eq!(
        op.requests("POST", SUBSCRIPTIONS).len(),
        posts,
        "adopted, not created"
    );
    // The spec wins: its description and second source were sent.
    let remote = op.emulator.object(&existing).unwrap();
    assert_eq!(remote["description"], "all HTTP traffic");
    assert_eq!(remote["sources"].as_array().unwrap().len(), 2);
    op.wait_event("traffic", "Adopted").await;

    // Paused: spec changes wait, and deletion leaves the subscription in ngrok.
    op.patch::<EventSubscription>(
        "traffic",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": "true"}}}),
    )
    .await;
    op.wait_ready_status::<EventSubscription>("traffic", "False", "Paused")
        .await;
    let writes = op.writes();
    op.patch::<EventSubscription>("traffic", json!({"spec": {"description": "changed"}}))
        .await;
    op.wait_ready_status::<EventSubscription>("traffic", "False", "Paused")
        .await;
    assert_eq!(op.writes(), writes, "nothing written while paused");
    op.delete_and_wait::<EventSubscription>("traffic").await;
    assert!(op.emulator.object(&existing).is_some(), "left in ngrok");
    assert!(op.requests("DELETE", SUBSCRIPTION).is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_destination_of_another_ngrok_account_stalls_the_subscription() {
    const OTHER_ACCOUNT: &str = "other-account-key-0123456789";
    let op = Operator::start_with(
        "sub-account",
        Options {
            emulator: Options::default().emulator.account_key(OTHER_ACCOUNT),
            ..Default::default()
        },
    )
    .await;
    ready_destination(&op, "audit").await;
    op.create_secret(
        "keys",
        &[("other", OTHER_ACCOUNT), ("same", common::API_KEY)],
    )
    .await;
    let mut sub = traffic(&["audit"]);
    sub.spec.api_key_ref = serde_json::from_value(json!({"name": "keys", "key": "other"})).unwrap();
    op.create(&sub).await;
    let stalled = op
        .wait_condition::<EventSubscription>("traffic", "Stalled", "AccountMismatch")
        .await;
    assert!(
        ready_message(&stalled).contains(r#"EventDestination "audit" is in another ngrok account"#),
        "{}",
        ready_message(&stalled)
    );
    op.wait_event("traffic", "AccountMismatch").await;
    assert!(op.requests("POST", SUBSCRIPTIONS).is_empty());

    // Another key of the same account is fine: the destination is visible with it.
    op.patch::<EventSubscription>(
        "traffic",
        json!({"spec": {"apiKeyRef": {"name": "keys", "key": "same"}}}),
    )
    .await;
    let id = op.wait_ready_id::<EventSubscription>("traffic").await;
    assert_eq!(
        op.emulator.account_of(&id).as_deref(),
        Some(common::API_KEY)
    );
    op.stop().await;
}

/// After a restart the destination cache fills page by page (10 a page): a subscription
/// reconciled before it holds every destination would report DestinationNotReady for
/// destinations that are Ready, and its conditions would change at every start.
#[tokio::test]
async fn a_restart_leaves_a_ready_subscription_as_it_was() {
    let mut op = Operator::start("sub-restart").await;
    let names: Vec<String> = (0..25).map(|i| format!("dest-{i:02}")).collect();
    for name in &names {
        op.create(&destination(name, json!({"target": kinesis_role(name)})))
            .await;
    }
    for name in &names {
        op.wait_ready::<EventDestination>(name).await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    op.create(&traffic(&refs)).await;
    let before = op.wait_ready::<EventSubscription>("traffic").await;
    let writes = op.writes();

    op.stop_controller().await;
    op.start_controller();
    op.wait_reconciles::<EventSubscription>(0.0, 1.0).await;
    let after = op.api::<EventSubscription>().get("traffic").await.unwrap();
    assert_eq!(
        op.reconciles::<EventSubscription>("DestinationNotReady"),
        0.0,
        "no reconcile after the restart found a destination missing"
    );
    let conditions = |s: &EventSubscription| s.status.as_ref().unwrap().common.conditions.clone();
    assert_eq!(
        conditions(&after),
        conditions(&before),
        "{}",
        ready_message(&after)
    );
    assert_eq!(op.writes(), writes, "the restart wrote nothing to ngrok");
}
