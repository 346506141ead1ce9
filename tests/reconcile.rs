//! The reconciler against the real API server and the ngrok emulator: lifecycle, secrets,
//! status, events, and the cost of each pass in API calls.

mod common;

use common::{API_KEY, Kind, Operator, Options, destination, kinesis_role};
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;
use serde_json::{Value, json};
use test_support::{creds, wire_creds};

const ROLE: &str = "arn:aws:iam::123456789012:role/ngrok";

#[tokio::test]
async fn each_target_is_created_with_exactly_the_resolved_request_body() {
    let op = Operator::start("create-each").await;
    op.create_secret(
        "aws",
        &[
            ("id", "AKIAEXAMPLEID00001"),
            ("secret", "aws-secret-value-1"),
        ],
    )
    .await;
    op.create_secret("dd", &[("api-key", "dd-secret-value-1")])
        .await;
    op.create_secret("az", &[("client-secret", "az-secret-value-1")])
        .await;

    let cases = [
        (
            "kinesis-role",
            json!({"description": "k", "metadata": "{\"env\":\"dev\"}", "target": kinesis_role("s1")}),
            json!({"description": "k", "metadata": "{\"env\":\"dev\"}", "format": "json", "target": {"kinesis": {
                "stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/s1", "auth": {"role": {"role_arn": ROLE}}}}}),
        ),
        (
            "firehose-creds",
            json!({"target": {"firehose": {"deliveryStreamArn": "arn:aws:firehose:us-east-2:1:deliverystream/f", "auth": creds("aws")}}}),
            json!({"format": "json", "target": {"firehose": {"delivery_stream_arn": "arn:aws:firehose:us-east-2:1:deliverystream/f",
                "auth": wire_creds("AKIAEXAMPLEID00001", "aws-secret-value-1")}}}),
        ),
        (
            "cloudwatch-creds",
            json!({"target": {"cloudwatchLogs": {"logGroupArn": "arn:aws:logs:us-east-2:1:log-group:g", "auth": creds("aws")}}}),
            json!({"format": "json", "target": {"cloudwatch_logs": {"log_group_arn": "arn:aws:logs:us-east-2:1:log-group:g",
                "auth": wire_creds("AKIAEXAMPLEID00001", "aws-secret-value-1")}}}),
        ),
        (
            "datadog",
            json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "api-key"}, "ddsite": "datadoghq.eu", "ddtags": "env:dev", "service": "ngrok"}}}),
            json!({"format": "json", "target": {"datadog": {"api_key": "dd-secret-value-1", "ddsite": "datadoghq.eu", "ddtags": "env:dev", "service": "ngrok"}}}),
        ),
        (
            "azure",
            json!({"target": {"azureLogsIngestion": {"tenantId": "t", "clientId": "c", "clientSecretRef": {"name": "az", "key": "client-secret"},
                "logsIngestionUri": "https://dce.ingest.monitor.azure.com", "dataCollectionRuleId": "dcr-1", "dataCollectionStreamName": "Custom-X"}}}),
            json!({"format": "json", "target": {"azure_logs_ingestion": {"tenant_id": "t", "client_id": "c", "client_secret": "az-secret-value-1",
                "logs_ingestion_uri": "https://dce.ingest.monitor.azure.com", "data_collection_rule_id": "dcr-1", "data_collection_stream_name": "Custom-X"}}}),
        ),
    ];
    for (name, spec, _) in &cases {
        op.create(&destination(name, spec.clone())).await;
    }
    let mut bodies = Vec::new();
    for (name, _, expected) in &cases {
        let ready = op.wait_ready::<EventDestination>(name).await;
        let status = ready.status.unwrap();
        let id = status.common.id.clone().expect("an id in status");
        assert!(id.starts_with("ed_"), "{id}");
        assert_eq!(
            status.common.uri.as_deref(),
            Some(format!("{}/event_destinations/{id}", op.emulator.base_url()).as_str())
        );
        assert!(status.common.created_at.is_some());
        assert!(status.common.pending_create.is_none());
        assert!(
            op.emulator.object(&id).is_some(),
            "{id} exists in the emulator"
        );
        bodies.push(expected.clone());
    }
    let posts: Vec<Value> = op
        .requests("POST", "/event_destinations")
        .into_iter()
        .map(|r| r.body.unwrap())
        .collect();
    assert_eq!(posts.len(), cases.len(), "exactly one POST per resource");
    for expected in &bodies {
        assert!(
            posts.contains(expected),
            "no POST with body {expected}; got {posts:#?}"
        );
    }
    // Creating costs POSTs only: no GET, no PATCH.
    assert_eq!(op.emulator.requests().len(), cases.len());
    assert_eq!(op.emulator.destination_ids().len(), cases.len());

    // The Target column and a Created event for `kubectl describe`.
    let firehose = op
        .api::<EventDestination>()
        .get("firehose-creds")
        .await
        .unwrap();
    assert_eq!(firehose.status.unwrap().target.as_deref(), Some("firehose"));
    let note = op.wait_event("kinesis-role", "Created").await;
    assert!(
        note.starts_with("created ed_") && note.ends_with(" in ngrok"),
        "{note}"
    );
    op.stop().await;
}

#[tokio::test]
async fn an_update_is_one_patch_carrying_only_the_change() {
    let op = Operator::start("update").await;
    op.create(&destination(
        "d",
        json!({"description": "before", "target": kinesis_role("s")}),
    ))
    .await;
    let created = op.wait_ready::<EventDestination>("d").await;
    let id = created.status.as_ref().unwrap().common.id.clone().unwrap();

    op.patch::<EventDestination>("d", json!({"spec": {"description": "after"}}))
        .await;
    let updated = op.wait_ready::<EventDestination>("d").await;
    assert_eq!(
        updated.status.as_ref().unwrap().common.id.as_deref(),
        Some(id.as_str()),
        "same destination"
    );
    let patches = op.requests("PATCH", "/event_destinations/{id}");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].path, format!("/event_destinations/{id}"));
    assert_eq!(patches[0].body, Some(json!({"description": "after"})));
    assert_eq!(op.emulator.object(&id).unwrap()["description"], "after");
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn a_pass_with_nothing_to_do_writes_nothing_anywhere() {
    let op = Operator::start("noop").await;
    op.create(&destination("d", json!({"target": kinesis_role("s")})))
        .await;
    let ready = op.wait_ready::<EventDestination>("d").await;
    let requests = op.emulator.requests().len();

    // A label change triggers a reconcile without changing the spec.
    op.touch::<EventDestination>("d").await;
    let after = op.api::<EventDestination>().get("d").await.unwrap();
    assert_eq!(after.status, ready.status, "the status was not rewritten");
    assert_eq!(
        op.emulator.requests().len(),
        requests,
        "no call to ngrok at all"
    );
    op.stop().await;
}

#[tokio::test]
async fn an_outside_edit_of_the_status_is_repaired() {
    let op = Operator::start("status-edit").await;
    op.create(&destination("d", json!({"target": kinesis_role("s")})))
        .await;
    op.wait_ready::<EventDestination>("d").await;
    // One more pass, so that the operator has seen its own last write come back.
    op.touch::<EventDestination>("d").await;

    let mut tampered = op.api::<EventDestination>().get_status("d").await.unwrap();
    let status = tampered.status.as_mut().unwrap();
    for condition in &mut status.common.conditions {
        condition.message = "edited by hand".into();
    }
    op.api::<EventDestination>()
        .replace_status("d", &Default::default(), &tampered)
        .await
        .unwrap();
    // The operator wrote this status last, but it is the API server's copy that counts.
    testbed::wait_for(
        &op.api::<EventDestination>(),
        "d",
        |d: Option<&EventDestination>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
                s.common
                    .conditions
                    .iter()
                    .all(|c| c.message != "edited by hand")
            })
        },
        common::WAIT,
    )
    .await
    .unwrap();
    op.stop().await;
}

#[tokio::test]
async fn delete_removes_the_destination_then_the_finalizer() {
    let op = Operator::start("delete").await;
    op.create(&destination("d", json!({"target": kinesis_role("s")})))
        .await;
    let ready = op.wait_ready::<EventDestination>("d").await;
    assert_eq!(
        ready.metadata.finalizers.as_deref(),
        Some(&["events.ngrok.io/cleanup".to_string()][..])
    );
    let id = ready.status.unwrap().common.id.unwrap();

    op.delete_and_wait::<EventDestination>("d").await;
    let deletes = op.requests("DELETE", "/event_destinations/{id}");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, format!("/event_destinations/{id}"));
    assert!(op.emulator.object(&id).is_none());
    op.stop().await;
}

#[tokio::test]
async fn retain_leaves_the_destination_in_ngrok() {
    let op = Operator::start("retain").await;
    op.create(&destination(
        "d",
        json!({"deletionPolicy": "Retain", "target": kinesis_role("s")}),
    ))
    .await;
    let id = op.wait_ready_id::<EventDestination>("d").await;
    op.delete_and_wait::<EventDestination>("d").await;
    assert!(op.requests("DELETE", "/event_destinations/{id}").is_empty());
    assert!(
        op.emulator.object(&id).is_some(),
        "the destination is still in ngrok"
    );
    op.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_is_patched_to_ngrok() {
    let op = Operator::start("rotate").await;
    op.create_secret("dd", &[("api-key", "dd-value-before")])
        .await;
    op.create(&destination(
        "d",
        json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "api-key"}}}}),
    ))
    .await;
    let ready = op.wait_ready::<EventDestination>("d").await;
    let hash_before = ready.status.as_ref().unwrap().secrets_hash.clone().unwrap();

    let rotated = json!({"stringData": {"api-key": "dd-value-after"}});
    op.patch_secret("dd", rotated).await;
    let patch = testbed::eventually("a PATCH with the rotated key", common::WAIT, || async {
        op.requests("PATCH", "/event_destinations/{id}")
            .into_iter()
            .next()
    })
    .await
    .unwrap();
    assert_eq!(
        patch.body,
        Some(json!({"target": {"datadog": {"api_key": "dd-value-after"}}}))
    );
    let after = testbed::wait_for(
        &op.api::<EventDestination>(),
        "d",
        move |d: Option<&EventDestination>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.secrets_hash.as_deref() != Some(hash_before.as_str()))
        },
        common::WAIT,
    )
    .await
    .unwrap();
    let status = serde_json::to_string(&after.status).unwrap();
    assert!(
        !status.contains("dd-value"),
        "status carries no secret value: {status}"
    );
    op.stop().await;
}

#[tokio::test]
async fn a_missing_secret_stalls_without_calling_ngrok_and_converges_when_it_appears() {
    let op = Operator::start("missing-secret").await;
    op.create(&destination("d", json!({"target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:1:stream/s", "auth": creds("aws")}}}))).await;
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "SecretNotFound")
        .await;
    let ready = stalled.condition("Ready").unwrap().clone();
    assert_eq!(ready.status, "False");
    assert_eq!(
        ready.message,
        r#"Secret "aws" does not exist in this namespace"#
    );
    assert!(op.emulator.requests().is_empty(), "no call to ngrok");

    // The wrong key first: the message names Secret and key.
    op.create_secret("aws", &[("id", "AKIAIOSFODNN7EXAMPLE")])
        .await;
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "SecretKeyNotFound")
        .await;
    let message = &stalled.status.unwrap().common.conditions[0].message;
    assert_eq!(message, r#"Secret "aws" has no key "secret""#);
    assert!(op.emulator.requests().is_empty());

    op.patch_secret("aws", json!({"stringData": {"secret": "s3cr3t"}}))
        .await;
    let ready = op.wait_ready::<EventDestination>("d").await;
    assert!(ready.status.unwrap().common.id.is_some());
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);
    assert_eq!(
        op.wait_event("d", "SecretNotFound").await,
        r#"Secret "aws" does not exist in this namespace"#
    );
    assert!(
        op.wait_event("d", "Created")
            .await
            .starts_with("created ed_")
    );
    op.stop().await;
}

#[tokio::test]
async fn a_spec_over_ngrok_byte_limits_stalls_before_any_call() {
    let op = Operator::start("bytes").await;
    // 128 characters pass the schema's maxLength; 256 bytes do not pass ngrok.
    op.create(&destination(
        "d",
        json!({"description": "é".repeat(128), "target": kinesis_role("s")}),
    ))
    .await;
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "InvalidSpec")
        .await;
    assert_eq!(
        stalled.status.unwrap().common.conditions[0].message,
        "spec.description is 256 bytes long; ngrok allows at most 255 bytes"
    );
    assert!(op.emulator.requests().is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_wrong_api_key_stalls_naming_authentication_without_retrying() {
    let options = Options {
        operator_api_key: Some("not-the-key".into()),
        ..Default::default()
    };
    let op = Operator::start_with("bad-key", options).await;
    op.create(&destination("d", json!({"target": kinesis_role("s")})))
        .await;
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "NgrokAuthenticationFailed")
        .await;
    let message = stalled.status.unwrap().common.conditions[0].message.clone();
    assert!(
        message.starts_with("the ngrok API key was refused"),
        "{message}"
    );
    assert!(message.contains("ERR_NGROK_206"), "{message}");
    assert!(!message.contains("not-the-key"), "{message}");
    let calls = op.emulator.requests().len();
    assert_eq!(calls, 1, "one attempt, no retries");

    // Further triggers without a change do not call ngrok again.
    op.touch::<EventDestination>("d").await;
    assert_eq!(op.emulator.requests().len(), calls);
    op.stop().await;
}

#[tokio::test]
async fn resources_converge_through_a_storm_of_server_errors() {
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .error_rate(0.5);
    let op = Operator::start_with(
        "storm",
        Options {
            emulator,
            ..Default::default()
        },
    )
    .await;
    // Each ngrok request fails with probability 1/2: with 12 resources, at least 12 requests,
    // the chance that none failed (and the test proved nothing) is 1 in 4096, not the 1 in 64
    // that 6 resources left (a fresh-clone CI run met it).
    let names: Vec<String> = (0..12).map(|i| format!("d{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        op.create(&destination(
            name,
            json!({"target": kinesis_role(&format!("s{i}"))}),
        ))
        .await;
    }
    let mut ids = Vec::new();
    for name in &names {
        ids.push(op.wait_ready_id::<EventDestination>(name).await);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), names.len(), "distinct ids");
    let mut remote = op.emulator.destination_ids();
    remote.sort();
    assert_eq!(
        remote, ids,
        "exactly one destination per resource, no twins"
    );
    let failures = op
        .emulator
        .requests()
        .iter()
        .filter(|r| r.status.is_some_and(|s| s >= 500))
        .count();
    assert!(failures > 0, "the storm happened");
    op.stop().await;
}

#[tokio::test]
async fn a_spec_ngrok_refuses_stalls_without_retrying_until_it_changes() {
    let marker = "region-ngrok-does-not-serve";
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .refuse_marker(marker);
    let op = Operator::start_with(
        "refused",
        Options {
            emulator,
            ..Default::default()
        },
    )
    .await;
    op.create(&destination("d", json!({"target": kinesis_role(marker)})))
        .await;
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "NgrokRejected")
        .await;
    let message = stalled.status.as_ref().unwrap().common.conditions[0]
        .message
        .clone();
    assert!(
        message.starts_with("ngrok rejected the destination: ERR_NGROK_7800: "),
        "{message}"
    );
    assert!(message.contains("(operation op_"), "{message}");
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);
    assert!(
        stalled.status.unwrap().common.pending_create.is_none(),
        "a refusal proves nothing was created"
    );

    // Triggers without a change of spec or secrets do not call ngrok again.
    op.touch::<EventDestination>("d").await;
    assert_eq!(op.emulator.requests().len(), 1, "no retry storm");

    // Fixing the spec converges.
    op.patch::<EventDestination>(
        "d",
        json!({"spec": {"target": kinesis_role("good-stream")}}),
    )
    .await;
    op.wait_ready::<EventDestination>("d").await;
    assert_eq!(op.requests("POST", "/event_destinations").len(), 2);
    op.stop().await;
}

/// Stopping at any moment of the start stops (a pod told to stop while it starts must not
/// wait for its SIGKILL): kube-runtime's runner waits for its cache's first full listing, and
/// a graceful shutdown before that used to wait for ever. Each round stops the controllers a
/// few more scheduler turns after their start, and they must be gone within the bound.
#[tokio::test]
async fn stopping_while_the_caches_fill_stops() {
    let mut op = Operator::start_with("stop-early", Options::default()).await;
    op.create(&destination(
        "audit",
        json!({"target": kinesis_role("audit")}),
    ))
    .await;
    op.wait_ready::<EventDestination>("audit").await;
    for round in 0..30 {
        op.stop_controller_within(std::time::Duration::from_secs(30))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the controllers did not stop"));
        op.start_controller();
        for _ in 0..round {
            tokio::task::yield_now().await;
        }
    }
    op.stop().await;
}
