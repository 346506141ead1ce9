//! Status fixtures for the Argo CD health check (`argocd/health.lua`, tested by
//! `tests/chart/test_argocd_health.py`) and the kstatus test (`tests/kstatus.rs`), taken from
//! real runs of the operator against the test bed and the ngrok API emulator, so that those
//! tests read what the operator really writes.
//!
//! The test reaches each state, reads the object as the API server returns it, removes what
//! changes from run to run (uids, times, ids) and compares it with
//! `tests/fixtures/status/<state>.json` (EventDestination) or
//! `tests/fixtures/status/subscription/<state>.json` (EventSubscription). `UPDATE_FIXTURES=1`
//! rewrites the files instead.

mod common;

use std::collections::BTreeMap;

use common::{API_KEY, Operator, Options, destination, kinesis_role, subscription};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::{Value, json};

/// Everything health checks (Argo CD's, kstatus) look at.
fn health_inputs(object: &Value) -> Value {
    let conditions: Vec<Value> = object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"], c["reason"], c["observedGeneration"]]))
        .collect();
    json!({
        "generation": object["metadata"]["generation"],
        "deleting": object["metadata"]["deletionTimestamp"].is_string(),
        "annotations": object["metadata"]["annotations"],
        "finalizers": object["metadata"]["finalizers"],
        "observedGeneration": object["status"]["observedGeneration"],
        "conditions": conditions,
    })
}

/// A finalizer of another controller, holding a deleted object.
const HOLD: &str = "fixtures.test/hold";

fn dynamic<K: common::Kind>(op: &Operator) -> Api<DynamicObject> {
    Api::namespaced_with(
        op.client.clone(),
        &op.namespace,
        &ApiResource::erase::<K>(&()),
    )
}

async fn read<K: common::Kind>(op: &Operator, name: &str) -> Value {
    serde_json::to_value(dynamic::<K>(op).get(name).await.expect("get")).unwrap()
}

/// Marks `name` for deletion while another controller's finalizer holds it, after the
/// operator's cleanup has run, and returns the object as it is then; releases it afterwards.
async fn deleting<K: common::Kind>(op: &Operator, name: &str) -> Value {
    dynamic::<K>(op)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    testbed::wait_for(
        &op.api::<K>(),
        name,
        |d: Option<&K>| {
            d.is_some_and(|d| {
                d.meta().deletion_timestamp.is_some()
                    && d.meta().finalizers.as_deref() == Some(&[HOLD.to_string()][..])
            })
        },
        common::WAIT,
    )
    .await
    .unwrap();
    let object = read::<K>(op, name).await;
    dynamic::<K>(op)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    object
}

/// The spec change the operator has not seen yet: the API server's answer to the patch is the
/// object with the new generation and the status of the old one.
async fn generation_behind<K: common::Kind>(op: &Operator, name: &str) -> Value {
    let changed = dynamic::<K>(op)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"description": "changed"}})),
        )
        .await
        .unwrap();
    serde_json::to_value(changed).unwrap()
}

fn annotated<K: kube::Resource>(mut resource: K, annotations: &[(&str, &str)]) -> K {
    resource.meta_mut().annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    resource
}

/// Replaces what differs between runs with fixed placeholders; keeps everything a health
/// check can read (generation, deletionTimestamp, annotations, finalizers, conditions).
fn normalize(mut object: Value) -> Value {
    let metadata = object["metadata"].as_object_mut().unwrap();
    for key in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "namespace",
        "selfLink",
    ] {
        metadata.remove(key);
    }
    // An adopt-id names an object of this run.
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        for value in annotations.values_mut() {
            if let Some(text) = value.as_str() {
                *value = json!(regex_free_replace_ids(text));
            }
        }
    }
    if metadata.contains_key("deletionTimestamp") {
        metadata.insert("deletionTimestamp".into(), json!("2000-01-01T00:00:00Z"));
    }
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        // Only what a health check reads; ids, uris and hashes vary with the run (and whether
        // the emulator's injected failure came before or after the create).
        status.retain(|key, _| {
            ["observedGeneration", "conditions", "target"].contains(&key.as_str())
        });
        if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
            for condition in conditions {
                condition["lastTransitionTime"] = json!("2000-01-01T00:00:00Z");
                if let Some(message) = condition["message"].as_str() {
                    condition["message"] = json!(regex_free_replace_ids(message));
                }
            }
        }
    }
    object
}

/// `ed_3Abc…` → `ed_PLACEHOLDER` (and `op_…`, ngrok's operation ids), and the emulator's port → `PORT`.
fn regex_free_replace_ids(text: &str) -> String {
    let replace = |text: &str, marker: &str, placeholder: &str, keep: fn(char) -> bool| {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            out.push_str(&rest[..at]);
            out.push_str(placeholder);
            rest = rest[at + marker.len()..].trim_start_matches(keep);
        }
        out + rest
    };
    let text = replace(text, "ed_", "ed_PLACEHOLDER", |c| c.is_ascii_alphanumeric());
    let text = replace(&text, "esb_", "esb_PLACEHOLDER", |c| {
        c.is_ascii_alphanumeric()
    });
    let text = replace(&text, "op_", "op_PLACEHOLDER", |c| {
        c.is_ascii_alphanumeric()
    });
    replace(&text, "127.0.0.1:", "127.0.0.1:PORT", |c| {
        c.is_ascii_digit()
    })
}

#[tokio::test]
async fn status_fixtures_come_from_real_runs() {
    let mut fixtures: BTreeMap<&str, Value> = BTreeMap::new();

    // One operator for the states a working ngrok API leads to.
    let op = Operator::start_with("fx", Options::adopting()).await;
    op.create(&destination(
        "ready",
        json!({"target": kinesis_role("ready")}),
    ))
    .await;
    op.create(&destination(
        "stalled",
        json!({"target": {"kinesis": {
            "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/stalled",
            "auth": {"creds": {
                "accessKeyIdRef": {"name": "missing-aws", "key": "access-key-id"},
                "secretAccessKeyRef": {"name": "missing-aws", "key": "secret-access-key"}
            }}
        }}}),
    ))
    .await;
    let mut paused = destination("paused", json!({"target": kinesis_role("paused")}));
    paused.metadata.annotations =
        Some([("events.ngrok.io/paused".to_string(), "true".to_string())].into());
    op.create(&paused).await;
    // Each state is recorded as the wait saw it: a later read could see the next state.
    let ready = op.wait_ready::<EventDestination>("ready").await;
    fixtures.insert("ready", serde_json::to_value(ready).unwrap());
    let stalled = op
        .wait_condition::<EventDestination>("stalled", "Stalled", "SecretNotFound")
        .await;
    fixtures.insert("stalled", serde_json::to_value(stalled).unwrap());
    let paused = op
        .wait_ready_status::<EventDestination>("paused", "False", "Paused")
        .await;
    fixtures.insert("paused", serde_json::to_value(paused).unwrap());

    // Observe mode with a difference: a destination made by hand, observed by a resource that
    // wants another description.
    let by_hand = op
        .ngrok()
        .create::<ngrok_api::types::EventDestination>(&ngrok_api::types::EventDestinationCreate {
            description: Some("made by hand".into()),
            ..ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/observing".into(),
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::123456789012:role/ngrok".into(),
                    }),
                },
            ))
        })
        .await
        .unwrap();
    let mut observing = destination(
        "observing",
        json!({"description": "as written", "target": kinesis_role("observing")}),
    );
    observing.metadata.annotations = Some(
        [
            (
                "events.ngrok.io/management".to_string(),
                "observe".to_string(),
            ),
            ("events.ngrok.io/adopt-id".to_string(), by_hand.id),
        ]
        .into(),
    );
    op.create(&observing).await;
    let observing = op
        .wait_ready_status::<EventDestination>("observing", "False", "Observing")
        .await;
    fixtures.insert("observing", serde_json::to_value(observing).unwrap());

    op.wait_ready::<EventDestination>("ready").await;
    fixtures.insert(
        "generation-behind",
        generation_behind::<EventDestination>(&op, "ready").await,
    );

    // Deleting: the object marked for deletion after the operator's cleanup deleted it from
    // ngrok, held by another controller's finalizer (as a GitOps tool or a backup tool may
    // hold it).
    let mut held = destination("deleting", json!({"target": kinesis_role("deleting")}));
    held.metadata.finalizers = Some(vec![HOLD.to_string()]);
    op.create(&held).await;
    op.wait_ready::<EventDestination>("deleting").await;
    fixtures.insert(
        "deleting",
        deleting::<EventDestination>(&op, "deleting").await,
    );
    op.stop().await;

    // ngrok failing: Reconciling=True, NgrokUnavailable.
    let failing = Operator::start_with(
        "fx-unavailable",
        Options {
            emulator: Emulator::builder()
                .api_key(API_KEY)
                .rate_limit_per_minute(0)
                .error_rate(1.0),
            ..Default::default()
        },
    )
    .await;
    failing
        .create(&destination(
            "unavailable",
            json!({"target": kinesis_role("u")}),
        ))
        .await;
    let unavailable = failing
        .wait_condition::<EventDestination>("unavailable", "Reconciling", "NgrokUnavailable")
        .await;
    fixtures.insert(
        "ngrok-unavailable",
        serde_json::to_value(unavailable).unwrap(),
    );

    failing.stop().await;

    // A create in flight: Reconciling=True, Creating (ngrok answers after 5 s).
    let slow = Operator::start_with(
        "fx-creating",
        Options {
            emulator: Emulator::builder()
                .api_key(API_KEY)
                .rate_limit_per_minute(0)
                .latency_ms(5000),
            ..Default::default()
        },
    )
    .await;
    slow.create(&destination(
        "creating",
        json!({"target": kinesis_role("c")}),
    ))
    .await;
    let creating = slow
        .wait_condition::<EventDestination>("creating", "Reconciling", "Creating")
        .await;
    fixtures.insert("creating", serde_json::to_value(creating).unwrap());
    // Let the create finish before the namespace goes.
    slow.wait_ready::<EventDestination>("creating").await;
    slow.stop().await;

    compare_or_update("tests/fixtures/status", fixtures);
}

/// The same states of an EventSubscription (Argo CD and kstatus read both kinds alike).
#[tokio::test]
async fn subscription_status_fixtures_come_from_real_runs() {
    let mut fixtures: BTreeMap<&str, Value> = BTreeMap::new();
    let op = Operator::start_with("fx-sub", Options::adopting()).await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    let audit = op.wait_ready_id::<EventDestination>("audit").await;
    let traffic = |name: &str, spec: Value| {
        let mut spec = spec;
        spec["sources"] = json!([{"type": "http_request_complete.v0"}]);
        subscription(name, spec)
    };
    op.create(&traffic(
        "ready",
        json!({"destinationRefs": [{"name": "audit"}]}),
    ))
    .await;
    // Waiting for a destination that does not exist: Reconciling=True, DestinationNotReady.
    op.create(&traffic(
        "reconciling",
        json!({"destinationRefs": [{"name": "not-yet"}]}),
    ))
    .await;
    op.create(&traffic(
        "stalled",
        json!({"destinationRefs": [{"name": "audit"}], "apiKeyRef": {"name": "missing", "key": "api-key"}}),
    ))
    .await;
    op.create(&annotated(
        traffic("paused", json!({"destinationRefs": [{"name": "audit"}]})),
        &[("events.ngrok.io/paused", "true")],
    ))
    .await;
    let ready = op.wait_ready::<EventSubscription>("ready").await;
    fixtures.insert("ready", serde_json::to_value(ready).unwrap());
    let reconciling = op
        .wait_condition::<EventSubscription>("reconciling", "Reconciling", "DestinationNotReady")
        .await;
    fixtures.insert("reconciling", serde_json::to_value(reconciling).unwrap());
    let stalled = op
        .wait_condition::<EventSubscription>("stalled", "Stalled", "SecretNotFound")
        .await;
    fixtures.insert("stalled", serde_json::to_value(stalled).unwrap());
    let paused = op
        .wait_ready_status::<EventSubscription>("paused", "False", "Paused")
        .await;
    fixtures.insert("paused", serde_json::to_value(paused).unwrap());

    // Observe mode with a difference: a subscription made by hand, observed by a resource
    // that wants another description.
    let by_hand = op
        .ngrok()
        .create::<ngrok_api::types::EventSubscription>(&ngrok_api::types::EventSubscriptionCreate {
            description: Some("made by hand".into()),
            ..ngrok_api::types::EventSubscriptionCreate::new(
                vec![ngrok_api::types::EventSourceReplace::new(
                    "http_request_complete.v0",
                )],
                vec![audit],
            )
        })
        .await
        .unwrap();
    op.create(&annotated(
        traffic(
            "observing",
            json!({"description": "as written", "destinationRefs": [{"name": "audit"}]}),
        ),
        &[
            ("events.ngrok.io/management", "observe"),
            ("events.ngrok.io/adopt-id", &by_hand.id),
        ],
    ))
    .await;
    let observing = op
        .wait_ready_status::<EventSubscription>("observing", "False", "Observing")
        .await;
    fixtures.insert("observing", serde_json::to_value(observing).unwrap());

    fixtures.insert(
        "generation-behind",
        generation_behind::<EventSubscription>(&op, "ready").await,
    );

    let mut held = traffic("deleting", json!({"destinationRefs": [{"name": "audit"}]}));
    held.metadata.finalizers = Some(vec![HOLD.to_string()]);
    op.create(&held).await;
    op.wait_ready::<EventSubscription>("deleting").await;
    fixtures.insert(
        "deleting",
        deleting::<EventSubscription>(&op, "deleting").await,
    );
    op.stop().await;

    compare_or_update("tests/fixtures/status/subscription", fixtures);
}

/// Compares what a health check reads of each recorded object with the committed fixture, or
/// rewrites the fixtures with `UPDATE_FIXTURES=1`.
fn compare_or_update(dir: &str, fixtures: BTreeMap<&str, Value>) {
    let dir = common::repo_path(dir);
    let update = std::env::var("UPDATE_FIXTURES").is_ok_and(|v| v == "1");
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut stale = Vec::new();
    for (name, object) in fixtures {
        let text = serde_json::to_string_pretty(&normalize(object.clone())).unwrap() + "\n";
        let path = dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &text).unwrap();
        } else {
            // What a health check reads must match exactly; messages are kept in the files for
            // people, not compared (they carry ngrok's error text).
            let committed: Option<Value> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if committed.as_ref().map(health_inputs) != Some(health_inputs(&normalize(object))) {
                stale.push(format!("{}:\n{text}", path.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "status fixtures differ from what the operator writes now; run \
         `UPDATE_FIXTURES=1 cargo nextest run --test deploy_fixtures` and review:\n{}",
        stale.join("\n")
    );
}
