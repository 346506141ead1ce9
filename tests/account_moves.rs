//! A resource's API key changes: a rotation within its ngrok account changes nothing in ngrok;
//! a move to another account takes the object along while the previous key still works, and
//! stops with `AccountChanged`, naming the old id, when it does not. Never a silent orphan.
//! (Issue 13, defect 2.) The emulator has two accounts, the first with two keys.

mod common;

use common::{Operator, Options, destination, kinesis_role};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;

const A1: &str = "account-a-key-1-0123456789";
const A2: &str = "account-a-key-2-0123456789";
const B1: &str = "account-b-key-1-0123456789";
const SECRET: &str = "team-ngrok-key";

async fn start(prefix: &str) -> Operator {
    Operator::start_with(
        prefix,
        Options {
            operator_api_key: None,
            emulator: Emulator::builder()
                .api_key(A1)
                .second_key(A1, A2)
                .account_key(B1)
                .rate_limit_per_minute(0),
            ..Default::default()
        },
    )
    .await
}

/// The ids of the destinations in the account of `key`.
async fn ids_in(op: &Operator, key: &str) -> Vec<String> {
    let mut config = ngrok_api::ClientConfig::new(ngrok_api::Secret::new(key))
        .with_base_url(&op.emulator.base_url())
        .unwrap();
    config.rate_limit_per_minute = 0;
    let client = ngrok_api::Client::new(config).unwrap();
    let mut ids: Vec<String> = client
        .list::<ngrok_api::types::EventDestination>()
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.id)
        .collect();
    ids.sort();
    ids
}

/// A destination using the key in Secret `SECRET`, Ready with its id.
async fn ready_destination(op: &Operator, key: &str) -> (String, String) {
    op.create_secret(SECRET, &[("key", key)]).await;
    op.create(&destination(
        "audit",
        json!({"apiKeyRef": {"name": SECRET, "key": "key"}, "target": kinesis_role("audit")}),
    ))
    .await;
    let id = op.wait_ready_id::<EventDestination>("audit").await;
    (id, fingerprint(op).await)
}

async fn fingerprint(op: &Operator) -> String {
    let d = op.api::<EventDestination>().get("audit").await.unwrap();
    d.status.unwrap().common.key_fingerprint.unwrap_or_default()
}

/// Puts `key` into the Secret (the Secret watch triggers the resource).
async fn change_key(op: &Operator, key: &str) {
    op.patch_secret(SECRET, json!({"stringData": {"key": key}}))
        .await;
}

/// Waits until a pass has seen the object with another key than `old` (the status records
/// that key's fingerprint).
async fn wait_fingerprint_changed(op: &Operator, old: &str) -> EventDestination {
    let old = old.to_string();
    testbed::wait_for(
        &op.api::<EventDestination>(),
        "audit",
        move |d: Option<&EventDestination>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.common.key_fingerprint.as_deref())
                .is_some_and(|f| f != old)
        },
        common::WAIT,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_rotation_within_the_account_changes_nothing_in_ngrok() {
    let op = start("moves-rotation").await;
    let (id, before) = ready_destination(&op, A1).await;
    change_key(&op, A2).await;
    let after = wait_fingerprint_changed(&op, &before).await;
    // The old key may go once the new one is in use.
    op.emulator.revoke_key(A1);
    op.touch::<EventDestination>("audit").await;
    let after_touch = op.wait_ready::<EventDestination>("audit").await;
    assert_eq!(
        after.status.unwrap().common.id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(after_touch.status.unwrap().common.id, Some(id.clone()));
    assert_eq!(
        op.requests("POST", "/event_destinations").len(),
        1,
        "no second create"
    );
    assert_eq!(ids_in(&op, A2).await, [id]);
    assert!(ids_in(&op, B1).await.is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_move_to_another_account_takes_the_object_along() {
    let op = start("moves-along").await;
    let (old_id, before) = ready_destination(&op, A1).await;
    change_key(&op, B1).await;
    let moved = wait_fingerprint_changed(&op, &before).await;
    let new_id = moved.status.unwrap().common.id.unwrap();
    assert_ne!(new_id, old_id);
    op.wait_ready::<EventDestination>("audit").await;
    let note = op.wait_event("audit", "Moved").await;
    assert!(note.contains(&old_id) && note.contains(&new_id), "{note}");
    assert_eq!(
        ids_in(&op, B1).await,
        [new_id],
        "created in the new account"
    );
    assert!(
        ids_in(&op, A1).await.is_empty(),
        "deleted from the previous one: no orphan"
    );
    assert_eq!(op.requests("POST", "/event_destinations").len(), 2);
    // Deleting the resource deletes the object where it now is.
    op.delete_and_wait::<EventDestination>("audit").await;
    assert!(ids_in(&op, B1).await.is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_move_whose_previous_key_is_revoked_stops_naming_the_old_id() {
    let op = start("moves-stall").await;
    let (old_id, _) = ready_destination(&op, A1).await;
    // The key moves to another account and the previous one is revoked at once: the operator
    // can neither move the old object nor tell whether it still exists.
    op.emulator.revoke_key(A1);
    op.emulator.revoke_key(A2);
    change_key(&op, B1).await;
    let stalled = op
        .wait_condition::<EventDestination>("audit", "Stalled", "AccountChanged")
        .await;
    let message = common::ready_message(&stalled);
    assert!(message.contains(&old_id), "names the old id: {message}");
    assert_eq!(
        op.requests("POST", "/event_destinations").len(),
        1,
        "nothing created"
    );
    assert!(ids_in(&op, B1).await.is_empty());
    op.stop().await;
}

/// While no operator runs, the key changes to `key` and the resource is deleted; then an
/// operator starts that never knew the old key, and the resource goes. Returns the Event
/// note with `reason` about it.
async fn delete_after_a_key_change_slept_through(
    op: &mut Operator,
    key: &str,
    reason: &str,
) -> String {
    op.stop_controller().await;
    change_key(op, key).await;
    op.api::<EventDestination>()
        .delete("audit", &Default::default())
        .await
        .unwrap();
    op.start_controller();
    op.wait_deleted::<EventDestination>("audit").await;
    op.wait_event("audit", reason).await
}

#[tokio::test]
async fn a_deletion_after_a_move_the_operator_slept_through_names_what_may_remain() {
    let mut op = start("moves-restart-delete").await;
    let (old_id, _) = ready_destination(&op, A1).await;
    // The new key cannot find the object; the resource still goes (a namespace never waits on
    // an account no key reaches), with a Warning naming the id.
    let note = delete_after_a_key_change_slept_through(&mut op, B1, "DeleteUnconfirmed").await;
    assert!(note.contains(&old_id), "names the id: {note}");
    assert_eq!(
        ids_in(&op, A1).await,
        [old_id],
        "out of the operator's reach: it stays, and the Warning says so"
    );
    assert!(ids_in(&op, B1).await.is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_deletion_after_a_rotation_the_operator_slept_through_deletes() {
    let mut op = start("moves-restart-rotation").await;
    let (id, _) = ready_destination(&op, A1).await;
    let note = delete_after_a_key_change_slept_through(&mut op, A2, "Deleted").await;
    assert!(note.contains(&id), "{note}");
    assert!(ids_in(&op, A2).await.is_empty(), "deleted with the new key");
    op.stop().await;
}
