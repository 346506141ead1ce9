//! Deletion always ends (issue 19): a resource whose account can no longer be reached (its
//! `apiKeyRef` Secret gone, its key refused) is released after a bounded number of attempts
//! with a Warning `DeleteUnconfirmed` naming the id, a namespace deleted while the operator was
//! down still goes, and ngrok's refusal to delete a destination a subscription names is
//! `DestinationInUse`, retried until it passes (it was a Stalled `NgrokRejected` that nothing
//! triggered again).

mod common;

use std::time::Duration;

use common::{Kind, Operator, Options, destination, kinesis_role};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;

const TEAM_KEY: &str = "team-key-0123456789abcdef";
const SECRET: &str = "team-ngrok-key";
/// Long enough for the bounded attempts with their backoff (about 15 to 30 s) and more.
const DELETION_ENDS_WITHIN: Duration = Duration::from_secs(120);

/// An operator whose emulator also accepts `TEAM_KEY`, a second key of the same account.
async fn start(prefix: &str) -> Operator {
    Operator::start_with(
        prefix,
        Options {
            emulator: Emulator::builder()
                .api_key(common::API_KEY)
                .second_key(common::API_KEY, TEAM_KEY)
                .rate_limit_per_minute(0),
            ..Default::default()
        },
    )
    .await
}

/// A destination `audit` using `TEAM_KEY` from Secret `SECRET`, Ready, and its id.
async fn team_destination(op: &Operator) -> String {
    op.create_secret(SECRET, &[("key", TEAM_KEY)]).await;
    op.create(&destination(
        "audit",
        json!({"apiKeyRef": {"name": SECRET, "key": "key"}, "target": kinesis_role("audit")}),
    ))
    .await;
    op.wait_ready_id::<EventDestination>("audit").await
}

async fn wait_gone(op: &Operator, name: &str) {
    testbed::wait_deleted(&op.api::<EventDestination>(), name, DELETION_ENDS_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("EventDestination {name} is not gone: {e}"));
}

/// The Secret and the resource are deleted while no operator runs; the operator that starts
/// never knew the account. It was `Stalled SecretNotFound` for ever.
#[tokio::test]
async fn a_deletion_whose_secret_went_first_ends_naming_the_id() {
    let mut op = start("delete-secret-gone").await;
    let id = team_destination(&op).await;
    op.stop_controller().await;
    op.secrets()
        .delete(SECRET, &Default::default())
        .await
        .unwrap();
    op.api::<EventDestination>()
        .delete("audit", &Default::default())
        .await
        .unwrap();
    op.start_controller();
    wait_gone(&op, "audit").await;
    let note = op.wait_event("audit", "DeleteUnconfirmed").await;
    assert!(note.contains(&id), "names the id: {note}");
    assert!(note.contains(SECRET), "names the cause: {note}");
    assert!(
        op.emulator.object(&id).is_some(),
        "out of the operator's reach: it stays, and the Warning says so"
    );
    op.stop().await;
}

/// ngrok refuses the key (revoked) when the resource is deleted: retried a bounded number of
/// times (not Stalled), then released. It was `Stalled NgrokAuthenticationFailed` for ever.
#[tokio::test]
async fn a_deletion_whose_key_is_refused_ends_naming_the_id() {
    let op = start("delete-key-refused").await;
    let id = team_destination(&op).await;
    op.emulator.revoke_key(TEAM_KEY);
    op.api::<EventDestination>()
        .delete("audit", &Default::default())
        .await
        .unwrap();
    // Retried meanwhile, with the cause's reason: not Stalled.
    let deleting = common::wait_ready_reason(
        &op.api::<EventDestination>(),
        "audit",
        "False",
        "NgrokAuthenticationFailed",
    )
    .await;
    assert!(
        !deleting.has_condition("Stalled", "True", "NgrokAuthenticationFailed"),
        "{:?}",
        deleting.status
    );
    let message = common::ready_message(&deleting);
    assert!(
        message.contains(&id) && message.contains("attempt"),
        "{message}"
    );
    wait_gone(&op, "audit").await;
    let note = op.wait_event("audit", "DeleteUnconfirmed").await;
    assert!(note.contains(&id), "names the id: {note}");
    assert!(op.emulator.object(&id).is_some());
    op.stop().await;
}

/// The whole namespace goes while the operator is down, the Secret with it (before the
/// resource, whose finalizer holds it): the operator that starts lets the namespace go.
#[tokio::test]
async fn a_namespace_deleted_while_the_operator_was_down_goes_after_the_restart() {
    let mut op = start("delete-ns-down").await;
    team_destination(&op).await;
    op.stop_controller().await;
    let namespaces = Api::<Namespace>::all(op.client.clone());
    namespaces
        .delete(&op.namespace, &Default::default())
        .await
        .unwrap();
    // The namespace controller deletes the Secret; the resource waits for its finalizer.
    testbed::eventually("the Secret is gone", common::WAIT, || async {
        op.secrets()
            .get_opt(SECRET)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await
    .unwrap();
    op.start_controller();
    testbed::wait_deleted(&namespaces, &op.namespace, DELETION_ENDS_WITHIN)
        .await
        .expect("the namespace goes");
    op.stop().await;
}

/// A subscription ngrok knows of, made outside this namespace's resources, names the
/// destination: ngrok refuses the DELETE. The resource waits with `DestinationInUse` (retried,
/// naming no one), and goes once the subscription no longer names it.
#[tokio::test]
async fn ngroks_still_referenced_refusal_is_destination_in_use_and_retried() {
    let op = Operator::start("delete-in-use").await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    let id = op.wait_ready_id::<EventDestination>("audit").await;
    let ngrok = op.ngrok();
    let foreign = ngrok
        .create::<ngrok_api::types::EventSubscription>(
            &ngrok_api::types::EventSubscriptionCreate::new(
                vec![ngrok_api::types::EventSourceReplace::new(
                    "ip_policy_created.v0",
                )],
                vec![id.clone()],
            ),
        )
        .await
        .unwrap();
    op.api::<EventDestination>()
        .delete("audit", &Default::default())
        .await
        .unwrap();
    let waiting = common::wait_ready_reason(
        &op.api::<EventDestination>(),
        "audit",
        "False",
        "DestinationInUse",
    )
    .await;
    assert!(
        waiting
            .condition("Reconciling")
            .is_some_and(|c| c.status == "True")
            && waiting
                .condition("Stalled")
                .is_none_or(|c| c.status != "True"),
        "retried, not Stalled: {:?}",
        waiting.status
    );
    let message = common::ready_message(&waiting);
    assert!(!message.contains(&foreign.id), "names no one: {message}");
    // Still retried: ngrok is asked again until it agrees.
    let refused = |op: &Operator| {
        op.requests("DELETE", "/event_destinations/{id}")
            .iter()
            .filter(|r| r.status == Some(400))
            .count()
    };
    testbed::eventually("another DELETE", DELETION_ENDS_WITHIN, || async {
        (refused(&op) >= 2).then_some(())
    })
    .await
    .unwrap();
    ngrok
        .delete::<ngrok_api::types::EventSubscription>(&foreign.id)
        .await
        .unwrap();
    wait_gone(&op, "audit").await;
    assert!(op.emulator.object(&id).is_none(), "deleted in ngrok");
    op.stop().await;
}
