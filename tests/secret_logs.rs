//! No secret value reaches a log line, at any level, from any crate in the operator's process.
//! Its own test binary: it installs a global TRACE subscriber that captures everything.

mod common;

use common::{API_KEY, Operator, destination};
use ngrok_events_operator::crd::EventDestination;
use serde_json::json;
use test_support::{Captured, creds};

#[tokio::test]
async fn trace_logs_of_a_full_lifecycle_contain_no_secret_value() {
    let captured = Captured::new();
    tracing_subscriber::fmt()
        .with_env_filter("trace,ngrok_api_emulator=off")
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let secrets = [
        "AKIAIDVALUE77SECRET",
        "aws-secret-value-77",
        "dd-api-key-77",
        "dd-api-key-rotated-77",
        "az-client-secret-77",
    ];
    let op = Operator::start("secret-logs").await;
    op.create_secret("aws", &[("id", secrets[0]), ("secret", secrets[1])])
        .await;
    op.create_secret("dd", &[("api-key", secrets[2])]).await;
    op.create_secret("az", &[("secret", secrets[4])]).await;
    op.create(&destination(
        "aws",
        json!({"target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:1:stream/s",
        "auth": creds("aws")}}}),
    ))
    .await;
    op.create(&destination(
        "dd",
        json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "api-key"}}}}),
    ))
    .await;
    op.create(&destination("az", json!({"target": {"azureLogsIngestion": {"tenantId": "t", "clientId": "c",
        "clientSecretRef": {"name": "az", "key": "secret"}, "logsIngestionUri": "https://x", "dataCollectionRuleId": "d", "dataCollectionStreamName": "s"}}})))
        .await;
    for name in ["aws", "dd", "az"] {
        op.wait_ready::<EventDestination>(name).await;
    }
    // Rotation sends a secret in a PATCH; deletion ends the lifecycle.
    op.patch_secret("dd", json!({"stringData": {"api-key": secrets[3]}}))
        .await;
    testbed::eventually("the rotated key to reach ngrok", common::WAIT, || async {
        op.requests("PATCH", "/event_destinations/{id}")
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    for name in ["aws", "dd", "az"] {
        op.delete_and_wait::<EventDestination>(name).await;
    }
    // The values did reach ngrok: the test exercised the paths that carry them.
    let bodies = serde_json::to_string(&op.emulator.requests()).unwrap();
    for secret in &secrets {
        assert!(
            bodies.contains(secret),
            "{secret} was never sent, the test proves nothing about it"
        );
    }
    op.stop().await;

    let logs = captured.text();
    assert!(
        logs.len() > 10_000,
        "TRACE logging was captured ({} bytes)",
        logs.len()
    );
    assert!(
        logs.contains("reconcile"),
        "the operator's own spans are in the capture"
    );
    for secret in secrets.iter().chain([&API_KEY]) {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
