//! Hardening, on the real API server with the emulator: drift repair and its cost, adoption,
//! pause, Retain under namespace deletion, and import.

mod common;

use std::time::{Duration, Instant};

use common::{Operator, Options, WAIT, destination, kinesis_role};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use ngrok_api_emulator::FaultsUpdate;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;

#[tokio::test]
async fn dashboard_deletes_and_edits_are_repaired_within_one_interval() {
    let interval = Duration::from_secs(3);
    let op = Operator::start_with("drift", Options::with_drift_interval(interval)).await;
    op.create(&destination(
        "deleted",
        json!({"description": "keep me", "target": kinesis_role("a")}),
    ))
    .await;
    op.create(&destination(
        "edited",
        json!({"description": "as written", "target": kinesis_role("b")}),
    ))
    .await;
    let old_id = op.wait_ready_id::<EventDestination>("deleted").await;
    let edited_id = op.wait_ready_id::<EventDestination>("edited").await;

    // What a person does in the dashboard.
    let started = Instant::now();
    assert!(op.emulator.delete_object(&old_id));
    op.emulator
        .patch_object(
            &edited_id,
            &json!({"description": "changed in the dashboard"}),
        )
        .unwrap();

    let note = op.wait_event("deleted", "DriftCorrected").await;
    let new_id = testbed::wait_for(
        &op.api::<EventDestination>(),
        "deleted",
        |d: Option<&EventDestination>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.common.id.is_some() && s.common.pending_create.is_none())
        },
        WAIT,
    )
    .await
    .unwrap()
    .status
    .unwrap()
    .common
    .id
    .unwrap();
    assert_ne!(new_id, old_id);
    assert_eq!(
        note,
        format!("{old_id} was deleted in ngrok; created {new_id}")
    );
    assert_eq!(
        op.emulator.object(&new_id).unwrap()["description"],
        "keep me"
    );

    op.wait_event("edited", "DriftCorrected").await;
    let repaired = testbed::eventually("the edit to be reverted", WAIT, || async {
        (op.emulator.object(&edited_id)?["description"] == "as written").then_some(())
    })
    .await;
    repaired.unwrap();
    let took = started.elapsed();
    // The next drift pass is at most one interval (+10% jitter) after the last check.
    assert!(
        took < interval.mul_f64(1.1) + Duration::from_secs(2),
        "repaired after {took:?}"
    );
    let patches = op.requests("PATCH", "/event_destinations/{id}");
    assert_eq!(patches.len(), 1, "one PATCH reverts the edit");
    assert_eq!(patches[0].body, Some(json!({"description": "as written"})));
    op.stop().await;
}

#[tokio::test]
async fn an_idle_drift_pass_over_250_resources_costs_three_list_calls() {
    let interval = Duration::from_secs(8);
    let op = Operator::start_with("drift-cost", Options::with_drift_interval(interval)).await;
    let n = 250;
    for i in 0..n {
        op.create(&destination(
            &format!("d{i}"),
            json!({"target": kinesis_role(&format!("s{i}"))}),
        ))
        .await;
    }
    let ready = |d: &EventDestination| {
        d.status.as_ref().is_some_and(|s| {
            s.common
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    testbed::eventually("all 250 Ready", Duration::from_secs(120), || async {
        let list = op
            .api::<EventDestination>()
            .list(&Default::default())
            .await
            .ok()?;
        (list.items.iter().filter(|d| ready(d)).count() == n).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(op.requests("POST", "/event_destinations").len(), n);

    // Counting drift checks, not reconciles: the passes the Ready status writes trigger read
    // nothing. A resource checked (or created) less than half an interval before a pass waits
    // for the next one, so the first n checks span two passes; after them every resource is
    // on the same pass, and the next n checks are one full pass.
    let checks = op.drift_checks::<EventDestination>();
    op.wait_drift_checks::<EventDestination>(checks, n as f64)
        .await;
    op.emulator.clear_requests();
    let checks = op.drift_checks::<EventDestination>();
    op.wait_drift_checks::<EventDestination>(checks, n as f64)
        .await;
    let requests = op.emulator.requests();
    let routes: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.route))
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" && r.route == "/event_destinations"),
        "only list calls: {routes:?}"
    );
    assert!(
        (1..=3).contains(&requests.len()),
        "ceil(250/100) = 3 list calls at most, made {}",
        requests.len()
    );
    op.stop().await;
}

#[tokio::test]
async fn adoption_takes_over_an_existing_destination_without_creating() {
    let op = Operator::start_with("adopt", Options::adopting()).await;
    let existing = op
        .ngrok()
        .create::<ngrok_api::types::EventDestination>(&ngrok_api::types::EventDestinationCreate {
            description: Some("made in the dashboard".into()),
            ..ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/adopted".into(),
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::123456789012:role/ngrok".into(),
                    }),
                },
            ))
        })
        .await
        .unwrap();
    op.emulator.clear_requests();

    let mut adopting = destination(
        "adopter",
        json!({"description": "managed by Kubernetes", "target": kinesis_role("adopted")}),
    );
    adopting.metadata.annotations =
        Some([("events.ngrok.io/adopt-id".to_string(), existing.id.clone())].into());
    op.create(&adopting).await;
    let ready = op.wait_ready::<EventDestination>("adopter").await;
    assert_eq!(
        ready.status.unwrap().common.id.as_deref(),
        Some(existing.id.as_str())
    );
    assert!(
        op.requests("POST", "/event_destinations").is_empty(),
        "no create"
    );
    let patches = op.requests("PATCH", "/event_destinations/{id}");
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].body,
        Some(json!({"description": "managed by Kubernetes"}))
    );
    assert!(
        op.wait_event("adopter", "Adopted")
            .await
            .contains(&existing.id)
    );

    // Someone else's destination, and one that does not exist.
    let mut twin = adopting.clone();
    twin.metadata.name = Some("twin".into());
    twin.metadata.resource_version = None;
    twin.metadata.uid = None;
    op.create(&twin).await;
    let stalled = op
        .wait_condition::<EventDestination>("twin", "Stalled", "AdoptTargetInUse")
        .await;
    assert!(
        stalled.status.unwrap().common.conditions[0]
            .message
            .ends_with("is already managed by EventDestination adopter")
    );
    let mut missing = destination("missing", json!({"target": kinesis_role("m")}));
    missing.metadata.annotations = Some(
        [(
            "events.ngrok.io/adopt-id".to_string(),
            "ed_2k5okDBx9lLxNoCld1s7SFJnmhT".to_string(),
        )]
        .into(),
    );
    op.create(&missing).await;
    op.wait_condition::<EventDestination>("missing", "Stalled", "AdoptTargetNotFound")
        .await;
    assert!(op.requests("POST", "/event_destinations").is_empty());
    op.stop().await;
}

#[tokio::test]
async fn a_paused_resource_writes_nothing_until_resumed() {
    let op = Operator::start("pause").await;
    op.create(&destination(
        "d",
        json!({"description": "v1", "target": kinesis_role("s")}),
    ))
    .await;
    let id = op.wait_ready_id::<EventDestination>("d").await;
    let writes = op.writes();

    let paused = json!({"metadata": {"annotations": {"events.ngrok.io/paused": "true"}}, "spec": {"description": "v2"}});
    op.patch::<EventDestination>("d", paused).await;
    let status = op
        .wait_ready_status::<EventDestination>("d", "False", "Paused")
        .await
        .status
        .unwrap();
    assert!(
        !status.common.conditions.iter().any(|c| c.status == "True"),
        "neither Stalled nor Reconciling"
    );
    assert_eq!(op.writes(), writes, "no write to ngrok while paused");
    assert_eq!(op.emulator.object(&id).unwrap()["description"], "v1");

    let resumed = json!({"metadata": {"annotations": {"events.ngrok.io/paused": null}}});
    op.patch::<EventDestination>("d", resumed).await;
    op.wait_ready::<EventDestination>("d").await;
    assert_eq!(op.emulator.object(&id).unwrap()["description"], "v2");
    assert_eq!(op.writes(), writes + 1, "one PATCH on resume");
    op.stop().await;
}

#[tokio::test]
async fn retain_lets_a_namespace_go_even_while_ngrok_fails() {
    let op = Operator::start("retain-ns").await;
    op.create(&destination(
        "kept",
        json!({"deletionPolicy": "Retain", "target": kinesis_role("s")}),
    ))
    .await;
    let id = op.wait_ready_id::<EventDestination>("kept").await;
    op.emulator
        .set_faults(&FaultsUpdate {
            error_rate: Some(1.0),
            ..Default::default()
        })
        .unwrap();

    Api::<Namespace>::all(op.client.clone())
        .delete(&op.namespace, &Default::default())
        .await
        .unwrap();
    testbed::wait_deleted(
        &Api::<Namespace>::all(op.client.clone()),
        &op.namespace,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert!(
        op.emulator.object(&id).is_some(),
        "the destination stays in ngrok"
    );
    assert!(op.requests("DELETE", "/event_destinations/{id}").is_empty());
    op.stop().await;
}

/// What users copy from the README: `ngrok-events-operator import | kubectl apply -f -`, with the
/// real binary and the real kubectl. The objects were made by other clients, so their `format`
/// reads back as `JSON`, `""` and `json`: adopting them sends only the secrets (which ngrok never
/// shows), and drift passes send nothing at all.
#[tokio::test]
async fn imported_yaml_applied_with_kubectl_adopts_the_same_objects() {
    let op = Operator::start_with(
        "import",
        Options {
            drift_interval: Duration::from_secs(2),
            ..Options::adopting()
        },
    )
    .await;
    let ngrok = op.ngrok();
    use ngrok_api::types::{
        AwsAuth, AwsCredentials, AwsRole, EventDestinationCreate, EventTarget,
        EventTargetAzureLogsIngestion, EventTargetCloudwatchLogs, EventTargetDatadog,
        EventTargetFirehose, EventTargetKinesis,
    };
    let role = AwsAuth::Role(AwsRole {
        role_arn: "arn:aws:iam::1:role/r".into(),
    });
    let targets = [
        (
            "JSON",
            EventTarget::Kinesis(EventTargetKinesis {
                stream_arn: "arn:aws:kinesis:us-east-2:1:stream/a".into(),
                auth: role.clone(),
            }),
        ),
        (
            "",
            EventTarget::Firehose(EventTargetFirehose {
                delivery_stream_arn: "arn:aws:firehose:us-east-2:1:deliverystream/b".into(),
                auth: AwsAuth::Creds(AwsCredentials {
                    aws_access_key_id: "AKIAIOSFODNN7IMPORT".into(),
                    aws_secret_access_key: Some("s".into()),
                }),
            }),
        ),
        (
            "json",
            EventTarget::Datadog(EventTargetDatadog {
                api_key: Some("k".into()),
                ddsite: Some("datadoghq.eu".into()),
                ddtags: None,
                service: None,
            }),
        ),
        (
            "JSON",
            EventTarget::CloudwatchLogs(EventTargetCloudwatchLogs {
                log_group_arn: "arn:aws:logs:us-east-2:1:log-group:g".into(),
                auth: role.clone(),
            }),
        ),
        (
            "",
            EventTarget::AzureLogsIngestion(EventTargetAzureLogsIngestion {
                tenant_id: "t".into(),
                client_id: "c".into(),
                client_secret: Some("cs".into()),
                logs_ingestion_uri: "https://x.ingest.monitor.azure.com".into(),
                data_collection_rule_id: "dcr-1".into(),
                data_collection_stream_name: "Custom-X".into(),
            }),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (format, target)) in targets.into_iter().enumerate() {
        let create = EventDestinationCreate {
            description: Some(format!("team {i} audit")),
            metadata: Some("{\"team\":1}".into()),
            format: format.into(),
            ..EventDestinationCreate::new(target)
        };
        ids.push(
            ngrok
                .create::<ngrok_api::types::EventDestination>(&create)
                .await
                .unwrap()
                .id,
        );
    }
    let subscription = ngrok
        .create::<ngrok_api::types::EventSubscription>(
            &serde_json::from_value(json!({
                "description": "http traffic",
                "sources": [{"type": "http_request_complete.v0"}],
                "destination_ids": [ids[0], ids[1]],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    op.emulator.clear_requests();

    let import = tokio::process::Command::new(common::process::BINARY)
        .args(["import", "--namespace", &op.namespace])
        .args(["--api-url", &op.emulator.base_url()])
        .env("NGROK_API_KEY", common::API_KEY)
        .env("KUBECONFIG", common::process::kubeconfig().await)
        .env_remove("NGROK_API_KEY_FILE")
        .output()
        .await
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let yaml = String::from_utf8(import.stdout).unwrap();
    // ngrok and its audit log see who asked.
    let requests = op.emulator.requests();
    assert!(!requests.is_empty());
    for request in requests {
        assert_eq!(
            request.user_agent.as_deref(),
            Some(
                format!(
                    "ngrok-events-operator/{} ngrok-api/{}",
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            )
        );
    }

    // Create the Secrets exactly as the comments say (secret values are the user's to fill in).
    for line in yaml
        .lines()
        .filter_map(|l| l.strip_prefix("# kubectl create secret generic "))
    {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        let pairs: Vec<(String, String)> = words
            .filter_map(|w| w.strip_prefix("--from-literal="))
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.replace("<fill in>", "filled-in-secret"))
            })
            .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        op.create_secret(name, &refs).await;
    }
    let mut kubectl = tokio::process::Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", common::process::kubeconfig().await)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl (installed by testbed/install.sh)");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = kubectl.stdin.take().unwrap();
        stdin.write_all(yaml.as_bytes()).await.unwrap();
    }
    let applied = kubectl.wait_with_output().await.unwrap();
    assert!(
        applied.status.success(),
        "kubectl apply refused the import:\n{}\n{yaml}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let destinations = op
        .api::<EventDestination>()
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(destinations.items.len(), 5, "{yaml}");
    let mut adopted = Vec::new();
    for resource in &destinations.items {
        let ready = op
            .wait_ready::<EventDestination>(resource.metadata.name.as_deref().unwrap())
            .await;
        adopted.push(ready.status.unwrap().common.id.unwrap());
    }
    let subscriptions = op
        .api::<EventSubscription>()
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(subscriptions.items.len(), 1);
    let imported = op
        .wait_ready::<EventSubscription>(subscriptions.items[0].metadata.name.as_deref().unwrap())
        .await;
    assert_eq!(
        imported.status.unwrap().common.id.as_deref(),
        Some(subscription.id.as_str())
    );
    assert_eq!(imported.spec.destination_names().count(), 2);
    adopted.sort();
    ids.sort();
    assert_eq!(adopted, ids, "the same remote objects");
    let mut remote = op.emulator.destination_ids();
    remote.sort();
    assert_eq!(remote, ids);

    // Two drift passes later: content round-trips, only the secrets (unknown to import) were
    // sent, once, and never the format.
    let checks = op.drift_checks::<EventDestination>();
    op.wait_drift_checks::<EventDestination>(checks, 2.0 * adopted.len() as f64)
        .await;
    assert!(
        op.requests("POST", "/event_destinations").is_empty(),
        "nothing created"
    );
    assert!(
        op.requests("POST", "/event_subscriptions").is_empty(),
        "nothing created"
    );
    assert!(op.requests("PATCH", "/event_subscriptions/{id}").is_empty());
    let patches = op.requests("PATCH", "/event_destinations/{id}");
    assert_eq!(
        patches.len(),
        3,
        "the three targets with secrets: {patches:#?}"
    );
    for patch in patches {
        assert_eq!(
            patch
                .body
                .as_ref()
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["target"],
            "{patch:?}"
        );
    }
    for id in &ids {
        assert_eq!(op.emulator.object(id).unwrap()["metadata"], "{\"team\":1}");
    }
    op.stop().await;
}

/// The documented migration: import with `--observe`, apply, read the differences, then let
/// the operator manage. Observing writes nothing to ngrok; managing sends exactly the one
/// difference reported.
#[tokio::test]
async fn observe_mode_reports_differences_and_writes_nothing_until_managed() {
    let op = Operator::start_with(
        "observe",
        Options {
            drift_interval: Duration::from_secs(2),
            ..Options::adopting()
        },
    )
    .await;
    let ngrok = op.ngrok();
    // Made by hand (dashboard, SDK): format as ngrok's docs spell it.
    let made = ngrok
        .create::<ngrok_api::types::EventDestination>(&ngrok_api::types::EventDestinationCreate {
            description: Some("made by hand".into()),
            format: "JSON".into(),
            ..ngrok_api::types::EventDestinationCreate::new(ngrok_api::types::EventTarget::Kinesis(
                ngrok_api::types::EventTargetKinesis {
                    stream_arn: "arn:aws:kinesis:us-east-2:1:stream/by-hand".into(),
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::1:role/r".into(),
                    }),
                },
            ))
        })
        .await
        .unwrap();
    let managed = Default::default();
    let yaml = ngrok_events_operator::import::import(&ngrok, &op.namespace, true, Some(&managed))
        .await
        .unwrap();
    let [resource]: [serde_json::Value; 1] =
        testbed::parse_documents(&yaml).unwrap().try_into().unwrap();
    let resource: EventDestination = serde_json::from_value(resource).unwrap();
    let name = resource.metadata.name.clone().unwrap();
    op.emulator.clear_requests();
    op.create(&resource).await;

    // Nothing differs: Ready, still observing.
    let observed = op
        .wait_ready_status::<EventDestination>(&name, "True", "Observing")
        .await;
    let status = observed.status.unwrap();
    assert_eq!(status.common.id.as_deref(), Some(made.id.as_str()));
    assert!(status.common.drift.is_empty(), "{:?}", status.common.drift);

    // One field edited in the resource: exactly that field is reported, nothing is written.
    op.patch::<EventDestination>(
        &name,
        json!({"spec": {"description": "edited in Kubernetes"}}),
    )
    .await;
    let observed = op
        .wait_ready_status::<EventDestination>(&name, "False", "Observing")
        .await;
    let status = observed.status.unwrap();
    assert_eq!(
        status.common.drift,
        [ngrok_events_operator::drift::FieldDifference {
            path: "description".into(),
            wanted: Some("edited in Kubernetes".into()),
            actual: Some("made by hand".into()),
            secret: None,
        }]
    );
    let ready = status
        .common
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("description"), "{}", ready.message);
    // Drift passes go by: still no write.
    let reconciles = op.successful_reconciles::<EventDestination>();
    op.wait_reconciles::<EventDestination>(reconciles, 2.0)
        .await;
    assert_eq!(op.writes(), 0, "{:#?}", op.emulator.requests());
    assert_eq!(
        op.emulator.object(&made.id).unwrap()["description"],
        "made by hand"
    );

    // Managed: one PATCH of exactly that field, and the report is gone.
    op.patch::<EventDestination>(
        &name,
        json!({"metadata": {"annotations": {"events.ngrok.io/management": "manage"}}}),
    )
    .await;
    let managed = op.wait_ready::<EventDestination>(&name).await;
    assert!(managed.status.unwrap().common.drift.is_empty());
    let patches = op.requests("PATCH", "/event_destinations/{id}");
    assert_eq!(patches.len(), 1, "{patches:#?}");
    assert_eq!(
        patches[0].body,
        Some(json!({"description": "edited in Kubernetes"}))
    );
    assert_eq!(op.writes(), 1);
    assert_eq!(
        op.emulator.object(&made.id).unwrap()["description"],
        "edited in Kubernetes"
    );
    op.stop().await;
}
