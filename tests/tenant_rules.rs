//! What one team's resources can no longer do to another's, or leak (issue 19): a paused
//! resource's intent to create does not queue an identical create for ever; a long multi-byte
//! Event note is still published; observe mode shows no Secret value; a fixed API key clears
//! a subscription's refusal.

mod common;

use std::time::Duration;

use common::{Operator, Options, destination, kinesis_role, subscription};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;

/// Two Datadog destinations without a description share their fingerprint (the API key is a
/// secret, not part of it), whichever namespace they are in. One is paused holding an intent
/// to create (written as the operator writes it; the operator is restarted so that it reads
/// it from the API server); the other is created: it was `CreateQueued` for ever.
#[tokio::test]
async fn a_paused_resources_intent_does_not_queue_an_identical_create() {
    let mut op = Operator::start("intent-paused").await;
    op.create_secret("dd", &[("api-key", "dd-api-key-value")])
        .await;
    let spec = json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "api-key"}, "ddsite": "datadoghq.eu"}}});
    let mut paused = destination("paused", spec.clone());
    paused.metadata.annotations = Some(
        [("events.ngrok.io/paused".to_string(), "true".to_string())]
            .into_iter()
            .collect(),
    );
    op.create(&paused).await;
    op.wait_ready_status::<EventDestination>("paused", "False", "Paused")
        .await;

    // The intent of a create whose outcome was lost just before the resource was paused.
    let fingerprint = {
        let spec: ngrok_events_operator::crd::EventDestinationSpec =
            serde_json::from_value(spec.clone()).unwrap();
        let values = ngrok_events_operator::secrets::SecretValues::from_pairs(
            spec.target
                .secret_refs()
                .into_iter()
                .map(|r| (r.clone(), ngrok_api::Secret::new("dd-api-key-value"))),
        );
        let desired = ngrok_events_operator::desired::destination(&spec, &values).unwrap();
        ngrok_events_operator::desired::fingerprint(&desired)
    };
    op.stop_controller().await;
    // Written as the operator writes its status (its field manager, the whole status), so
    // that its later writes own the intent and clear it.
    let api = op.api::<EventDestination>();
    let mut status = api.get("paused").await.unwrap().status.unwrap();
    status.common.pending_create = Some(ngrok_events_operator::crd::PendingCreate {
        started_at: k8s_openapi::jiff::Timestamp::now().to_string(),
        fingerprint,
    });
    api.patch_status(
        "paused",
        &PatchParams::apply(ngrok_events_operator::reconcile::FIELD_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "events.ngrok.io/v1alpha1",
            "kind": "EventDestination",
            "status": status,
        })),
    )
    .await
    .unwrap();
    op.start_controller();
    // The paused resource is reconciled (its account known to this process) before the other.
    op.wait_reconciles::<EventDestination>(0.0, 1.0).await;

    op.create(&destination("other-team", spec)).await;
    let other = op.wait_ready_id::<EventDestination>("other-team").await;
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);

    // Managed again, the paused resource runs its own lost-create search: the other's object
    // is claimed, so nothing is its; it creates its own.
    let lists = op.requests("GET", "/event_destinations").len();
    op.patch::<EventDestination>(
        "paused",
        json!({"metadata": {"annotations": {"events.ngrok.io/paused": null}}}),
    )
    .await;
    let own = op.wait_ready_id::<EventDestination>("paused").await;
    assert_ne!(own, other);
    assert!(
        op.requests("GET", "/event_destinations").len() > lists,
        "searched before creating"
    );
    assert_eq!(op.requests("POST", "/event_destinations").len(), 2);
    op.stop().await;
}

const MARKER: &str = "REFUSE-ME";

/// ngrok's refusal quotes a description of 4-byte characters: the Warning's note was over
/// the 1024 bytes `events.k8s.io/v1` allows (it was cut at 1024 characters) and the API
/// server refused the Event.
#[tokio::test]
async fn a_long_multi_byte_refusal_is_published_as_an_event() {
    let op = Operator::start_with(
        "notes-bytes",
        Options {
            emulator: Emulator::builder()
                .api_key(common::API_KEY)
                .rate_limit_per_minute(0)
                .refuse_marker(MARKER),
            ..Default::default()
        },
    )
    .await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    op.wait_ready::<EventDestination>("audit").await;
    let description = format!("{MARKER} {}", "😀".repeat(240));
    op.create(&subscription(
        "traffic",
        json!({
            "description": description,
            "sources": [{"type": "ip_policy_created.v0"}],
            "destinationRefs": [{"name": "audit"}],
        }),
    ))
    .await;
    op.wait_ready_status::<EventSubscription>("traffic", "False", "NgrokRejected")
        .await;
    let note = op.wait_event("traffic", "NgrokRejected").await;
    assert!(note.len() <= 1024, "{} bytes", note.len());
    assert!(note.contains("😀") && note.ends_with('…'), "{note}");
    op.stop().await;
}

const SECRET_KEY_ID: &str = "AKIASECRETSIDE00001";
const REMOTE_KEY_ID: &str = "AKIAREMOTESIDE00002";

/// An adopted object observed, whose access key id differs from the Secret's: the report says
/// which field differs, and neither key id appears in the status or in any Event.
#[tokio::test]
async fn observe_mode_shows_no_secret_value() {
    let op = Operator::start_with(
        "observe-secrets",
        Options {
            drift_interval: Duration::from_secs(2),
            ..Options::adopting()
        },
    )
    .await;
    let made = op
        .ngrok()
        .create::<ngrok_api::types::EventDestination>(
            &ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
                    auth: ngrok_api::types::AwsAuth::Creds(ngrok_api::types::AwsCredentials {
                        aws_access_key_id: REMOTE_KEY_ID.into(),
                        aws_secret_access_key: Some(ngrok_api::Secret::new("remote-secret-value")),
                    }),
                },
            )),
        )
        .await
        .unwrap();
    op.create_secret(
        "aws",
        &[("id", SECRET_KEY_ID), ("secret", "aws-secret-value-1")],
    )
    .await;
    let mut resource = destination(
        "observed",
        json!({"target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:1:stream/s",
            "auth": {"creds": {"accessKeyIdRef": {"name": "aws", "key": "id"},
                               "secretAccessKeyRef": {"name": "aws", "key": "secret"}}}}}}),
    );
    resource.metadata.annotations = Some(
        [
            ("events.ngrok.io/adopt-id".to_string(), made.id.clone()),
            (
                "events.ngrok.io/management".to_string(),
                "observe".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    );
    op.create(&resource).await;
    let observed = op
        .wait_ready_status::<EventDestination>("observed", "False", "Observing")
        .await;
    let drift = &observed.status.as_ref().unwrap().common.drift;
    let key_id = drift
        .iter()
        .find(|d| d.path == "target.kinesis.auth.creds.aws_access_key_id")
        .unwrap_or_else(|| panic!("the access key id is reported: {drift:?}"));
    assert_eq!(key_id.secret.as_deref(), Some("differs"));
    // A few drift passes later, nothing anywhere shows either value.
    let reconciles = op.successful_reconciles::<EventDestination>();
    op.wait_reconciles::<EventDestination>(reconciles, 2.0)
        .await;
    let resource = op.api::<EventDestination>().get("observed").await.unwrap();
    let status = serde_json::to_string(&resource.status).unwrap();
    let events = Api::<Event>::namespaced(op.client.clone(), &op.namespace)
        .list(&Default::default())
        .await
        .unwrap();
    let notes: Vec<String> = events.items.into_iter().filter_map(|e| e.note).collect();
    assert!(!notes.is_empty(), "the test sees the events");
    for text in std::iter::once(&status).chain(&notes) {
        for value in [SECRET_KEY_ID, REMOTE_KEY_ID, "aws-secret-value-1"] {
            assert!(!text.contains(value), "{value} shown in {text}");
        }
    }
    assert_eq!(op.writes(), 1, "only the test's own create");
    op.stop().await;
}

/// A subscription whose key ngrok refuses stalls; fixing the Secret clears the refusal. It
/// stayed Stalled: its inputs were only its destination ids, so the refusal was remembered
/// for the new key too.
#[tokio::test]
async fn fixing_a_subscriptions_key_clears_the_refusal() {
    let op = Operator::start("sub-key-fixed").await;
    let target = op
        .ngrok()
        .create::<ngrok_api::types::EventDestination>(
            &ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::1:role/r".into(),
                    }),
                },
            )),
        )
        .await
        .unwrap();
    op.create_secret("ngrok", &[("key", "a-key-ngrok-does-not-know")])
        .await;
    op.create(&subscription(
        "traffic",
        json!({
            "apiKeyRef": {"name": "ngrok", "key": "key"},
            "sources": [{"type": "ip_policy_created.v0"}],
            "destinationIds": [target.id],
        }),
    ))
    .await;
    op.wait_ready_status::<EventSubscription>("traffic", "False", "NgrokAuthenticationFailed")
        .await;
    op.patch_secret("ngrok", json!({"stringData": {"key": common::API_KEY}}))
        .await;
    op.wait_ready::<EventSubscription>("traffic").await;
    op.stop().await;
}
