//! The status the operator writes, as the server-side-apply bodies of `Reconciliation::write_status`
//! (src/reconcile/status.rs builds them with `fill_status` and `status_patch`, used here too):
//! `{apiVersion, kind, status}`. A Ready and a Stalled body of each kind.
//!
//! tests/chart/test_crd_server_136.py applies them to the status subresource of a Kubernetes
//! 1.36 server: it runs this test with `NEO_STATUS_BODIES_DIR` set, where the bodies are written.
//! Without it, the test checks that the bodies serialize with every field the operator sets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use ngrok_events_operator::conditions::Phase;
use ngrok_events_operator::crd::{
    CommonStatus, DeletionPolicy, EventDestination, EventDestinationSpec, EventDestinationStatus,
    EventSubscription, EventSubscriptionSpec, EventSubscriptionStatus,
};
use ngrok_events_operator::drift::FieldDifference;
use ngrok_events_operator::error::Error;
use ngrok_events_operator::reconcile::{Managed, fill_status, status_patch};
use serde_json::{Value, json};

fn now() -> Time {
    Time("2026-12-03T10:00:00Z".parse::<Timestamp>().unwrap())
}

/// What `write_status` sends for `resource` in `phase`, on top of `status`: the operator's own
/// `fill_status` and `status_patch`.
fn body<K: Managed>(resource: &K, mut status: K::Status, phase: &Phase<'_>) -> Value {
    let previous = K::Status::default();
    fill_status(
        resource,
        &mut status,
        &previous,
        phase,
        DeletionPolicy::Delete,
        &now(),
    );
    status_patch::<K>(&status)
}

fn destination() -> EventDestination {
    let spec: EventDestinationSpec = serde_json::from_value(json!({
        "target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
                               "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/r"}}}}
    }))
    .unwrap();
    let mut destination = EventDestination::new("d", spec);
    destination.metadata.generation = Some(1);
    destination
}

fn subscription() -> EventSubscription {
    let spec: EventSubscriptionSpec = serde_json::from_value(json!({
        "sources": [{"type": "http_request_complete.v0", "fields": ["conn.client_ip"]}],
        "destinationRefs": [{"name": "d"}],
    }))
    .unwrap();
    let mut subscription = EventSubscription::new("s", spec);
    subscription.metadata.generation = Some(1);
    subscription
}

fn common_ready(id: &str) -> CommonStatus {
    CommonStatus {
        id: Some(id.into()),
        uri: Some(format!("https://api.ngrok.com/event_destinations/{id}")),
        created_at: Some("2026-12-03T09:59:00Z".into()),
        key_fingerprint: Some("0123456789ab".into()),
        drift: vec![FieldDifference {
            path: "description".into(),
            wanted: Some("a".into()),
            actual: Some("b".into()),
            secret: None,
        }],
        ..Default::default()
    }
}

/// `(file name, body)` of each body.
fn bodies() -> Vec<(&'static str, Value)> {
    let stalled_error = Error::InvalidSpec {
        field: "description",
        problem: "is 256 bytes long; ngrok allows at most 255 bytes".into(),
    };
    let stalled = Phase::Failed(&stalled_error);
    let destination_ready = EventDestinationStatus {
        common: common_ready("ed_2abc"),
        secrets_hash: Some("f".repeat(64)),
        ..Default::default()
    };
    let subscription_ready = EventSubscriptionStatus {
        common: CommonStatus {
            drift: vec![],
            ..common_ready("esb_2abc")
        },
        destination_ids: vec!["ed_2abc".into()],
        ..Default::default()
    };
    vec![
        (
            "destination-ready.json",
            body(&destination(), destination_ready, &Phase::Ready),
        ),
        (
            "destination-stalled.json",
            body(&destination(), EventDestinationStatus::default(), &stalled),
        ),
        (
            "subscription-ready.json",
            body(&subscription(), subscription_ready, &Phase::Ready),
        ),
        (
            "subscription-stalled.json",
            body(
                &subscription(),
                EventSubscriptionStatus::default(),
                &stalled,
            ),
        ),
    ]
}

#[test]
fn status_bodies() {
    let bodies = bodies();
    for (name, body) in &bodies {
        let conditions = body["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 3, "{name}: Ready, Reconciling, Stalled");
        let stalled = conditions.iter().find(|c| c["type"] == "Stalled").unwrap();
        assert_eq!(
            stalled["status"] == "True",
            name.ends_with("-stalled.json"),
            "{name}: {stalled}"
        );
        assert_eq!(body["status"]["observedGeneration"], 1, "{name}");
    }
    assert_eq!(bodies[0].1["status"]["target"], "kinesis");
    assert_eq!(bodies[2].1["status"]["sourceCount"], 1);
    if let Some(dir) = std::env::var_os("NEO_STATUS_BODIES_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in &bodies {
            std::fs::write(dir.join(name), serde_json::to_vec_pretty(body).unwrap()).unwrap();
        }
    }
}
