//! Adoption has an owner (issue 19, item 4): with the operator-wide key, only namespaces the
//! platform team selected (`--adoption-namespace-selector`) may take over an object of the
//! shared account, and never one that another namespace's subscription names; a team's own
//! `apiKeyRef` account is theirs to adopt from; an `adopt-id` other than the id a resource
//! manages is a mistake, never ignored; `import` leaves out what the cluster manages; and
//! adopting an id triggers the subscriptions that name it.

mod common;

use common::{
    API_KEY, CREDENTIALS_LABEL, EVERY_NAMESPACE, Operator, Options, PrivateCluster, destination,
    kinesis_role, ready_message, subscription,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use ngrok_api::types::{AwsAuth, AwsRole, EventDestinationCreate, EventTarget, EventTargetKinesis};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;

const ADOPT: &str = "events.ngrok.io/adopt-id";

/// A destination made outside Kubernetes (the dashboard, Terraform), straight through ngrok's
/// API, delivering to `stream`.
async fn made_by_hand(op: &Operator, stream: &str) -> String {
    op.ngrok()
        .create::<ngrok_api::types::EventDestination>(&EventDestinationCreate {
            description: Some("made in the dashboard".into()),
            ..EventDestinationCreate::new(EventTarget::Kinesis(EventTargetKinesis {
                stream_arn: stream_arn(stream),
                auth: AwsAuth::Role(AwsRole {
                    role_arn: "arn:aws:iam::123456789012:role/ngrok".into(),
                }),
            }))
        })
        .await
        .unwrap()
        .id
}

fn stream_arn(stream: &str) -> String {
    format!("arn:aws:kinesis:us-east-2:123456789012:stream/{stream}")
}

/// A destination delivering to `stream` that adopts `id`.
fn adopting(name: &str, id: &str, stream: &str) -> EventDestination {
    let mut resource = destination(
        name,
        json!({"description": "managed by Kubernetes", "target": kinesis_role(stream)}),
    );
    resource.metadata.annotations = Some([(ADOPT.to_string(), id.to_string())].into());
    resource
}

/// A labelled Secret `team-key` holding the team's own ngrok API key (the emulator's account).
async fn team_key(op: &Operator) {
    op.create_secret("team-key", &[("api-key", API_KEY)]).await;
}

/// Issue 19, item 4, as reproduced: an object made through ngrok's API, then a destination in
/// a tenant namespace with its `adopt-id`, the operator-wide key and the tenant's own stream.
/// Refused before any call, until the platform team labels the namespace; a team's own key
/// adopts from its own account without the label.
#[tokio::test]
async fn adoption_with_the_operator_key_needs_a_selected_namespace() {
    let selector = "adoption.test/allowed=true";
    let op = Operator::start_with(
        "adopt-ns",
        Options {
            adoption_namespace_selector: Some(selector.into()),
            ..Default::default()
        },
    )
    .await;
    let theirs = made_by_hand(&op, "theirs").await;
    op.emulator.clear_requests();

    op.create(&adopting("taker", &theirs, "tenant")).await;
    let stalled = op
        .wait_condition::<EventDestination>("taker", "Stalled", "AdoptionNotAllowed")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains(&format!(
            "label the namespace to match --adoption-namespace-selector={selector} (kubectl label namespace {} {selector})",
            op.namespace
        )),
        "{message}"
    );
    assert!(stalled.status.unwrap().common.id.is_none());
    assert!(
        op.emulator.requests().is_empty(),
        "refused before any call to ngrok: {:?}",
        op.emulator.requests()
    );
    let object = op.emulator.object(&theirs).unwrap();
    assert_eq!(
        object["target"]["kinesis"]["stream_arn"],
        stream_arn("theirs")
    );
    assert_eq!(object["description"], "made in the dashboard");

    // A team's own account is theirs: adopting from it needs no label.
    let own = made_by_hand(&op, "own").await;
    team_key(&op).await;
    let mut own_key = adopting("own-key", &own, "own");
    own_key.spec.api_key_ref =
        Some(serde_json::from_value(json!({"name": "team-key", "key": "api-key"})).unwrap());
    op.create(&own_key).await;
    assert_eq!(op.wait_ready_id::<EventDestination>("own-key").await, own);

    // The platform team selects the namespace: the waiting resource adopts by itself.
    Api::<Namespace>::all(op.client.clone())
        .patch(
            &op.namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"adoption.test/allowed": "true"}}})),
        )
        .await
        .unwrap();
    assert_eq!(op.wait_ready_id::<EventDestination>("taker").await, theirs);
    assert_eq!(
        op.emulator.object(&theirs).unwrap()["target"]["kinesis"]["stream_arn"],
        stream_arn("tenant")
    );
    op.stop().await;
}

/// An `adopt-id` other than the id the resource manages (a copied manifest, `import` applied
/// over an existing resource) was silently ignored: it is now a Stalled InvalidSpec that says
/// what to do, and the object it names is not touched.
#[tokio::test]
async fn an_adopt_id_other_than_the_managed_id_is_invalid() {
    let op = Operator::start_with("adopt-mismatch", Options::adopting()).await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    let managed = op.wait_ready_id::<EventDestination>("audit").await;
    let other = made_by_hand(&op, "other").await;
    op.emulator.clear_requests();

    op.patch::<EventDestination>(
        "audit",
        json!({"metadata": {"annotations": {ADOPT: other}}}),
    )
    .await;
    let stalled = op
        .wait_condition::<EventDestination>("audit", "Stalled", "InvalidSpec")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains(&format!(
            "names {other}, but this resource manages {managed} (status.id): remove the annotation, or set it to {managed}"
        )),
        "{message}"
    );
    assert_eq!(
        stalled.status.unwrap().common.id.as_deref(),
        Some(managed.as_str())
    );
    assert_eq!(op.writes(), 0, "{:?}", op.emulator.requests());

    // Set to the managed id: nothing to refuse.
    op.patch::<EventDestination>(
        "audit",
        json!({"metadata": {"annotations": {ADOPT: managed}}}),
    )
    .await;
    assert_eq!(op.wait_ready_id::<EventDestination>("audit").await, managed);
    op.stop().await;
}

/// `import` leaves out what a resource of the cluster already manages, says so in a comment,
/// and what it prints still applies and adopts.
#[tokio::test]
async fn import_leaves_out_what_the_cluster_manages() {
    let op = Operator::start_with("adopt-import", Options::adopting()).await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    let managed_id = op.wait_ready_id::<EventDestination>("audit").await;
    let by_hand = made_by_hand(&op, "by-hand").await;

    let managed = ngrok_events_operator::import::managed_in_cluster(&op.client)
        .await
        .unwrap();
    assert!(managed.contains(&managed_id));
    let yaml =
        ngrok_events_operator::import::import(&op.ngrok(), &op.namespace, false, Some(&managed))
            .await
            .unwrap();
    assert!(
        yaml.contains(&format!(
            "# not imported: {managed_id} is already managed by a resource in this cluster"
        )),
        "{yaml}"
    );
    let documents: Vec<serde_json::Value> = testbed::parse_documents(&yaml).unwrap();
    assert_eq!(documents.len(), 1, "{yaml}");
    let imported: EventDestination = serde_json::from_value(documents[0].clone()).unwrap();
    assert_eq!(
        imported.metadata.annotations.as_ref().unwrap()[ADOPT],
        by_hand
    );

    op.create(&imported).await;
    assert_eq!(
        op.wait_ready_id::<EventDestination>(imported.metadata.name.as_deref().unwrap())
            .await,
        by_hand
    );
    op.stop().await;
}

/// Another namespace's subscription names an object of the shared account: with the
/// operator-wide key it is not adopted (that would redirect B's events), and B is not named.
/// With the team's own key it is theirs to adopt; adopting it triggers B's subscription, which
/// is then refused for naming another namespace's destination instead of showing Ready until
/// its next drift check.
#[tokio::test]
async fn an_id_another_namespaces_subscription_names_is_not_taken_and_adopting_triggers_it() {
    let cluster = PrivateCluster::start().await;
    let op = Operator::start_with(
        "team-a",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            adoption_namespace_selector: Some(EVERY_NAMESPACE.into()),
            ..Default::default()
        },
    )
    .await;
    let team_b = testbed::namespace(&cluster.client, "team-b").await.unwrap();
    let b_subscriptions = Api::<EventSubscription>::namespaced(cluster.client.clone(), &team_b);
    let shared = made_by_hand(&op, "b-stream").await;
    let feed = subscription(
        "b-feed",
        json!({"sources": [{"type": "http_request_complete.v0"}], "destinationIds": [shared]}),
    );
    b_subscriptions
        .create(&Default::default(), &feed)
        .await
        .unwrap();
    common::wait_ready_reason(&b_subscriptions, "b-feed", "True", "Synced").await;
    op.emulator.clear_requests();

    op.create(&adopting("taker", &shared, "a-stream")).await;
    let stalled = op
        .wait_condition::<EventDestination>("taker", "Stalled", "AdoptTargetInUse")
        .await;
    let message = ready_message(&stalled);
    assert!(
        message.contains(&format!(
            "adopt-id {shared} is named by a subscription in another namespace"
        )),
        "{message}"
    );
    assert!(
        !message.contains(&team_b) && !message.contains("b-feed"),
        "{message}"
    );
    assert!(
        op.emulator.requests().is_empty(),
        "{:?}",
        op.emulator.requests()
    );

    // The team's own key (here of the same account): theirs to adopt.
    let key: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-key", "labels": {CREDENTIALS_LABEL: "true"}},
        "stringData": {"api-key": API_KEY}
    }))
    .unwrap();
    op.secrets()
        .create(&Default::default(), &key)
        .await
        .unwrap();
    let mut own = adopting("own", &shared, "b-stream");
    own.spec.api_key_ref =
        Some(serde_json::from_value(json!({"name": "team-key", "key": "api-key"})).unwrap());
    op.create(&own).await;
    assert_eq!(op.wait_ready_id::<EventDestination>("own").await, shared);

    // B's subscription is reconciled because of the adoption (its drift check is 10 minutes
    // away): it now names a destination of another namespace.
    let refused = common::wait_ready_reason(
        &b_subscriptions,
        "b-feed",
        "False",
        "DestinationOfAnotherNamespace",
    )
    .await;
    assert!(ready_message(&refused).contains(&shared));
    op.stop().await;
}
