//! Rules of the engine that only show on a real API server: an object ngrok holds that the
//! client cannot read costs only its own resource (issue 13, defect 3); a stale intent to create
//! holds up no other account's create (defect 5); a resource that is Ready never flaps back to
//! Creating (defect 6).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Operator, Options, destination, kinesis_role};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;

#[tokio::test]
async fn an_unreadable_object_costs_only_its_own_resource() {
    let op = Operator::start_with(
        "rules-unreadable",
        Options::with_drift_interval(Duration::from_secs(2)),
    )
    .await;
    for name in ["broken", "edited"] {
        op.create(&destination(
            name,
            json!({"description": name, "target": kinesis_role(name)}),
        ))
        .await;
    }
    let broken = op.wait_ready_id::<EventDestination>("broken").await;
    let edited = op.wait_ready_id::<EventDestination>("edited").await;

    // In ngrok: one object becomes a target type this version does not know, another is
    // edited in the dashboard.
    let mut unknown = serde_json::Map::new();
    for (key, value) in [
        ("id", json!(broken)),
        (
            "uri",
            json!(format!("https://api.ngrok.com/event_destinations/{broken}")),
        ),
        ("created_at", json!("2026-11-29T12:00:00Z")),
        ("description", json!("broken")),
        ("metadata", json!("")),
        ("format", json!("json")),
        (
            "target",
            json!({"splunk": {"url": "https://splunk.example"}}),
        ),
    ] {
        unknown.insert(key.into(), value);
    }
    assert!(op.emulator.set_raw_object(&broken, unknown));
    op.emulator
        .patch_object(&edited, &json!({"description": "edited in the dashboard"}))
        .unwrap();

    // The drift pass of the account goes on for the readable one …
    let note = op.wait_event("edited", "DriftCorrected").await;
    assert!(note.contains(&edited), "{note}");
    // … and the unreadable one is reported, neither patched nor created again.
    let stalled = op
        .wait_ready_status::<EventDestination>("broken", "False", "RemoteUnreadable")
        .await;
    let message = common::ready_message(&stalled);
    assert!(
        message.contains(&broken) && message.contains("cannot read"),
        "{message}"
    );
    let reconciling = stalled
        .status
        .unwrap()
        .common
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Reconciling")
        .unwrap();
    assert_eq!(reconciling.status, "True", "retried, not Stalled");
    assert_eq!(op.requests("POST", "/event_destinations").len(), 2);
    assert!(
        op.requests("PATCH", "/event_destinations/{id}")
            .iter()
            .all(|r| r.path.ends_with(&edited)),
        "only the readable object is patched"
    );
    op.stop().await;
}

#[tokio::test]
async fn a_stale_intent_of_another_account_does_not_queue_a_create() {
    let op = Operator::start("rules-queue").await;
    let spec = json!({"description": "same content", "target": kinesis_role("same")});
    // A resource of another account (its key's Secret is missing, so it never gets further)
    // carries an intent to create the same content, as a crash can leave behind.
    let mut stale_spec = spec.clone();
    stale_spec["apiKeyRef"] = json!({"name": "other-team-key", "key": "key"});
    op.create(&destination("stale", stale_spec)).await;
    op.wait_ready_status::<EventDestination>("stale", "False", "SecretNotFound")
        .await;
    let fingerprint = {
        let spec = serde_json::from_value(spec.clone()).unwrap();
        let values = ngrok_events_operator::secrets::SecretValues::from_pairs([]);
        let desired = ngrok_events_operator::desired::destination(&spec, &values).unwrap();
        ngrok_events_operator::desired::fingerprint(&desired)
    };
    op.api::<EventDestination>()
        .patch_status(
            "stale",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"pendingCreate": {
                "startedAt": "2026-11-29T10:00:00Z", "fingerprint": fingerprint}}})),
        )
        .await
        .unwrap();

    // The same content with the operator's key: created at once, not `CreateQueued`.
    op.create(&destination("fresh", spec)).await;
    op.wait_ready::<EventDestination>("fresh").await;
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn a_ready_resource_never_flaps_back_to_creating() {
    let op = Operator::start("rules-flap").await;
    // Every Ready reason each resource showed, in order, as the watch delivered them.
    let seen: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let watch = tokio::spawn({
        let seen = seen.clone();
        watcher(op.api::<EventDestination>(), watcher::Config::default())
            .applied_objects()
            .for_each(move |d| {
                if let Ok(d) = d {
                    let reason = d
                        .status
                        .as_ref()
                        .and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Ready"))
                        .map(|c| format!("{}:{}", c.status, c.reason));
                    if let Some(reason) = reason {
                        let name = d.metadata.name.clone().unwrap_or_default();
                        seen.lock().unwrap().entry(name).or_default().push(reason);
                    }
                }
                std::future::ready(())
            })
    });
    let names: Vec<String> = (0..8).map(|i| format!("flap-{i}")).collect();
    for name in &names {
        op.create(&destination(name, json!({"target": kinesis_role(name)})))
            .await;
    }
    for name in &names {
        op.wait_ready::<EventDestination>(name).await;
    }
    // More reconciles on caches that may lag behind the last status write.
    for name in &names {
        op.touch::<EventDestination>(name).await;
    }
    for name in &names {
        op.wait_ready::<EventDestination>(name).await;
    }
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    for name in &names {
        let reasons = &seen[name];
        let first_ready = reasons.iter().position(|r| r.starts_with("True:")).unwrap();
        assert!(
            reasons[first_ready..]
                .iter()
                .all(|r| r.starts_with("True:")),
            "{name} left Ready after it was Ready: {reasons:?}"
        );
    }
    op.stop().await;
}
