//! Bounded memory per tenant (issue 19, item 3): nothing a tenant controls outside the schema
//! makes the shared operator hold more than a bound.
//!
//! - Foreign annotations and labels, however large, are not kept (the caches' stripping is
//!   unit-tested in `annotations.rs`); here: the operator works with them present, and its own
//!   annotations still act.
//! - Every Secret value has a bound, checked before it is copied or sent: over it the resource
//!   is Stalled `InvalidSecret`, naming the Secret, the key and the bound, and ngrok never sees
//!   a request for it.
//! - A paused resource holds no ngrok account.

mod common;

use common::{API_KEY, Kind, Operator, Options, WAIT, destination, kinesis_role};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;

/// 200 KiB: what one tenant could put on each resource to grow the shared process.
fn huge() -> String {
    "x".repeat(200 * 1024)
}

/// A destination with `annotations` and `labels`.
fn annotated(
    name: &str,
    annotations: serde_json::Value,
    labels: serde_json::Value,
) -> EventDestination {
    let mut resource = destination(name, json!({"target": kinesis_role(name)}));
    resource.metadata.annotations = serde_json::from_value(annotations).unwrap();
    resource.metadata.labels = serde_json::from_value(labels).unwrap();
    resource
}

/// Many labels (each value at Kubernetes' 63-character limit).
fn many_labels() -> serde_json::Value {
    let labels: serde_json::Map<String, serde_json::Value> = (0..200)
        .map(|i| (format!("team.example/l{i}"), json!("v".repeat(63))))
        .collect();
    serde_json::Value::Object(labels)
}

#[tokio::test]
async fn foreign_annotations_and_labels_change_nothing_and_own_annotations_still_act() {
    let op = Operator::start_with("foreign-meta", Options::adopting()).await;
    let foreign = json!({
        "team.example/notes": huge(),
        "kubectl.kubernetes.io/last-applied-configuration": "{\"x\": 1}",
    });
    op.create(&annotated("plain", foreign.clone(), many_labels()))
        .await;
    op.wait_ready::<EventDestination>("plain").await;

    // paused: acts, and is lifted.
    op.patch::<EventDestination>(
        "plain",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": "true"}}}),
    )
    .await;
    op.wait_ready_status::<EventDestination>("plain", "False", "Paused")
        .await;
    op.patch::<EventDestination>(
        "plain",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": null}}}),
    )
    .await;
    op.wait_ready::<EventDestination>("plain").await;

    // adopt-id: adopts the object named, next to the foreign annotations.
    let existing = op
        .ngrok()
        .create::<ngrok_api::types::EventDestination>(
            &ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::123456789012:role/ngrok".into(),
                    }),
                    stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/adopted".into(),
                },
            )),
        )
        .await
        .unwrap();
    let mut annotations = foreign.clone();
    annotations["events.ngrok.io/adopt-id"] = json!(existing.id);
    op.create(&annotated("adopted", annotations, many_labels()))
        .await;
    assert_eq!(
        op.wait_ready_id::<EventDestination>("adopted").await,
        existing.id
    );
    assert_eq!(op.requests("POST", "/event_destinations").len(), 2);

    // drift-interval: out of bounds is refused by name, as without foreign annotations.
    let mut annotations = foreign.clone();
    annotations["events.ngrok.io/drift-interval"] = json!("1s");
    op.create(&annotated("fast", annotations, json!({}))).await;
    let fast = op
        .wait_ready_status::<EventDestination>("fast", "False", "InvalidSpec")
        .await;
    assert!(
        common::ready_message(&fast).contains("events.ngrok.io/drift-interval"),
        "{}",
        common::ready_message(&fast)
    );

    // One of the operator's annotations with a value over its bound: refused by name (kept as
    // a value no parser accepts), never read as absent, which for adopt-id would create.
    // (Kubernetes bounds all annotations of an object together at 256 KiB.)
    let annotations = json!({
        "team.example/notes": "x".repeat(100 * 1024),
        "events.ngrok.io/adopt-id": format!("ed_{}", "1".repeat(10 * 1024)),
    });
    op.create(&annotated("oversized", annotations, json!({})))
        .await;
    let oversized = op
        .wait_ready_status::<EventDestination>("oversized", "False", "InvalidSpec")
        .await;
    let message = common::ready_message(&oversized);
    assert!(message.contains("events.ngrok.io/adopt-id"), "{message}");
    assert!(message.len() < 400, "{message}");
    assert_eq!(
        op.requests("POST", "/event_destinations").len(),
        2,
        "nothing created for the oversized adopt-id"
    );
    op.stop().await;
}

/// A kinesis destination authenticating with access keys from Secret `aws`.
fn with_access_keys(name: &str) -> EventDestination {
    destination(
        name,
        json!({"target": {"kinesis": {
            "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
            "auth": {"creds": {
                "accessKeyIdRef": {"name": "aws", "key": "access-key-id"},
                "secretAccessKeyRef": {"name": "aws", "key": "secret-access-key"},
            }},
        }}}),
    )
}

#[tokio::test]
async fn an_access_key_id_of_900_kb_stalls_invalid_secret_and_is_never_sent() {
    let op = Operator::start("huge-access-key-id").await;
    let huge_id = "A".repeat(900_000);
    op.create_secret(
        "aws",
        &[
            ("access-key-id", &huge_id),
            ("secret-access-key", "wJalrXUtnFEMI"),
        ],
    )
    .await;
    op.create(&with_access_keys("d")).await;
    let stalled = op
        .wait_ready_status::<EventDestination>("d", "False", "InvalidSecret")
        .await;
    assert!(stalled.has_condition("Stalled", "True", "InvalidSecret"));
    let message = common::ready_message(&stalled);
    assert!(
        message.contains(r#"Secret "aws" key "access-key-id""#),
        "{message}"
    );
    assert!(
        message.contains("16 to 128 letters and digits"),
        "{message}"
    );
    assert!(!message.contains("AAAAAAAA"), "{message}");
    assert!(op.requests("POST", "/event_destinations").is_empty());

    // Fixed, it is sent.
    op.patch_secret(
        "aws",
        json!({"stringData": {"access-key-id": "AKIAIOSFODNN7EXAMPLE"}}),
    )
    .await;
    op.wait_ready::<EventDestination>("d").await;
    let sent = op.requests("POST", "/event_destinations");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body.as_ref().unwrap()["target"]["kinesis"]["auth"]["creds"]["aws_access_key_id"],
        "AKIAIOSFODNN7EXAMPLE"
    );
    op.stop().await;
}

#[tokio::test]
async fn an_api_key_of_a_mebibyte_stalls_invalid_secret_and_is_never_sent() {
    let op = Operator::start("huge-api-key").await;
    // The largest a Secret may hold, near enough.
    let huge_key = "k".repeat(1024 * 1024 - 1024);
    op.create_secret("ngrok", &[("api-key", &huge_key)]).await;
    let mut resource = destination("d", json!({"target": kinesis_role("d")}));
    resource.spec.api_key_ref = Some(ngrok_events_operator::crd::SecretKeyRef {
        name: "ngrok".into(),
        key: "api-key".into(),
    });
    op.create(&resource).await;
    let stalled = op
        .wait_ready_status::<EventDestination>("d", "False", "InvalidSecret")
        .await;
    let message = common::ready_message(&stalled);
    assert!(
        message.contains(r#"Secret "ngrok" key "api-key""#),
        "{message}"
    );
    assert!(message.contains("bound of 512 bytes"), "{message}");
    assert!(op.emulator.requests().is_empty(), "ngrok saw nothing");
    // No account was made for it: only the operator-wide key's.
    assert_eq!(op.accounts.live(), 1);
    op.stop().await;
}

/// The emulator's second account: a team's own key.
const TEAM_KEY: &str = "team-api-key-0123456789";

#[tokio::test]
async fn a_paused_resource_holds_no_account() {
    let op = Operator::start_with(
        "paused-account",
        Options {
            emulator: Emulator::builder()
                .api_key(API_KEY)
                .account_key(TEAM_KEY)
                .rate_limit_per_minute(0),
            ..Default::default()
        },
    )
    .await;
    // The operator-wide key's account lives as long as the process.
    assert_eq!(op.accounts.live(), 1);
    let paused = json!({"events.ngrok.io/paused": "true"});
    // Three paused resources, each with a key of its own (which nothing checks while paused).
    for (i, key) in [TEAM_KEY, "other-key-1", "other-key-2"].iter().enumerate() {
        let secret = format!("key-{i}");
        op.create_secret(&secret, &[("api-key", key)]).await;
        let mut resource = annotated(&format!("d{i}"), paused.clone(), json!({}));
        resource.spec.api_key_ref = Some(ngrok_events_operator::crd::SecretKeyRef {
            name: secret,
            key: "api-key".into(),
        });
        op.create(&resource).await;
    }
    for i in 0..3 {
        op.wait_ready_status::<EventDestination>(&format!("d{i}"), "False", "Paused")
            .await;
    }
    assert_eq!(op.accounts.live(), 1, "paused resources hold no account");
    assert!(op.emulator.requests().is_empty());

    // Resumed, d0 uses its team's account; paused again, it lets go of it.
    op.patch::<EventDestination>(
        "d0",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": null}}}),
    )
    .await;
    let id = op.wait_ready_id::<EventDestination>("d0").await;
    assert_eq!(op.accounts.live(), 2);
    op.patch::<EventDestination>(
        "d0",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": "true"}}}),
    )
    .await;
    op.wait_ready_status::<EventDestination>("d0", "False", "Paused")
        .await;
    testbed::eventually("the team's account to go", WAIT, || async {
        (op.accounts.live() == 1).then_some(())
    })
    .await
    .unwrap();

    // Deleted while paused, it leaves its object in ngrok without an account, as documented.
    op.delete_and_wait::<EventDestination>("d0").await;
    assert!(
        op.emulator.object(&id).is_some(),
        "a paused resource's object stays"
    );
    assert!(op.requests("DELETE", "/event_destinations/{id}").is_empty());
    op.stop().await;
}
