//! Hostile tenants: one operator shared by namespaces that do not trust each other. Nothing a
//! tenant writes may crash it, starve the others, reach into another namespace or grow its
//! memory without bound; the operator-wide key is the platform team's to hand out and rotate.
//!
//! Tests that need an operator watching several namespaces run it against a test bed of their
//! own ([`PrivateCluster`]), so that it sees no other test's resources.

mod common;

use std::time::Duration;

use common::process::{self, OperatorProcess, Spec};
use common::{API_KEY, Operator, Options, PrivateCluster, WAIT, destination, kinesis_role};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use ngrok_events_operator::reconcile::Managed;
use serde_json::json;

/// The label the tests put on every Secret they reference (see `credentials opt-in`).
const CREDENTIALS_LABEL: (&str, &str) = ("events.ngrok.io/credentials", "true");

/// A destination with `annotations`, in `namespace` of `client`'s cluster.
async fn create_annotated(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    annotations: serde_json::Value,
) {
    let mut resource = destination(name, json!({"target": kinesis_role(name)}));
    resource.metadata.annotations = serde_json::from_value(annotations).unwrap();
    Api::<EventDestination>::namespaced(client.clone(), namespace)
        .create(&Default::default(), &resource)
        .await
        .expect("create EventDestination");
}

/// Waits until `name`'s Ready condition has `status` and `reason`; returns its message.
async fn wait_reason<K: Managed>(api: &Api<K>, name: &str, status: &str, reason: &str) -> String {
    common::ready_message(&common::wait_ready_reason(api, name, status, reason).await)
}

/// The notes of every Event in `namespace`.
async fn event_notes(client: &kube::Client, namespace: &str) -> Vec<String> {
    Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn hostile_annotations_neither_crash_nor_flood_the_shared_operator() {
    let cluster = PrivateCluster::start().await;
    let client = cluster.client.clone();
    let emulator = Options::default().emulator.spawn().await.unwrap();
    let hostile = testbed::namespace(&client, "hostile").await.unwrap();
    let victim = testbed::namespace(&client, "victim").await.unwrap();
    let log_dir = process::log_dir("hostile-annotations");
    // The real binary, watching every namespace: a panic would end the process.
    let mut operator = OperatorProcess::spawn(&Spec {
        label: "shared".into(),
        log_dir,
        kubeconfig: cluster.servers.kubeconfig().to_path_buf(),
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: String::new(),
        metrics_addr: process::free_addr(),
        extra_args: vec![],
    })
    .unwrap();
    operator
        .wait_http_ok("/readyz", Duration::from_secs(30))
        .await
        .unwrap();

    let drift = "events.ngrok.io/drift-interval";
    let cases = [
        ("overflow", json!({drift: "18446744073709551615s"}), drift),
        ("flood", json!({drift: "0s"}), drift),
        (
            "garbage",
            json!({drift: "every now and then\nforged line"}),
            drift,
        ),
        ("week-and-a-day", json!({drift: "8d"}), drift),
        (
            "bad-adopt",
            json!({"events.ngrok.io/adopt-id": "ed_1/../../event_subscriptions\n"}),
            "events.ngrok.io/adopt-id",
        ),
    ];
    for (name, annotations, _) in &cases {
        create_annotated(&client, &hostile, name, annotations.clone()).await;
    }
    create_annotated(&client, &victim, "audit", json!({})).await;

    let victims = Api::<EventDestination>::namespaced(client.clone(), &victim);
    wait_reason(&victims, "audit", "True", "Synced").await;
    let hostiles = Api::<EventDestination>::namespaced(client.clone(), &hostile);
    for (name, _, annotation) in &cases {
        let message = wait_reason(&hostiles, name, "False", "InvalidSpec").await;
        assert!(message.contains(annotation), "{name}: {message}");
        assert!(!message.contains('\n'), "{name}: {message:?}");
        assert!(message.len() < 400, "{name}: {message}");
    }
    assert!(
        operator.try_exit_status().unwrap().is_none(),
        "the operator exited\n{}",
        operator.log_tail(30)
    );
    // The victim's create is the only call ngrok saw: no hostile value made one.
    let requests = emulator.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.route))
            .collect::<Vec<_>>(),
        ["POST /event_destinations"],
    );
    // A fixed annotation is picked up: the resource converges.
    let patch = json!({"metadata": {"annotations": {drift: "1h"}}});
    hostiles
        .patch("flood", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_reason(&hostiles, "flood", "True", "Synced").await;
    assert!(operator.try_exit_status().unwrap().is_none());
    for line in operator.log_lines() {
        assert!(!line.contains("forged line\""), "{line}");
    }
}

#[tokio::test]
async fn namespaces_cannot_use_or_hold_each_others_destinations() {
    let cluster = PrivateCluster::start().await;
    let op = Operator::start_with(
        "team-a",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            ..Default::default()
        },
    )
    .await;
    let team_b = testbed::namespace(&cluster.client, "team-b").await.unwrap();
    let b_subscriptions = Api::<EventSubscription>::namespaced(cluster.client.clone(), &team_b);
    let b_destinations = Api::<EventDestination>::namespaced(cluster.client.clone(), &team_b);

    op.create(&destination("a-sink", json!({"target": kinesis_role("a")})))
        .await;
    let a_id = op.wait_ready("a-sink").await.status.unwrap().id.unwrap();

    // B names A's destination by id: refused before any call, without naming A's resources.
    let subscription = common::subscription(
        "steal",
        json!({"sources": [{"type": "http_request_complete.v0"}], "destinationIds": [a_id]}),
    );
    b_subscriptions
        .create(&Default::default(), &subscription)
        .await
        .unwrap();
    let message = wait_reason(
        &b_subscriptions,
        "steal",
        "False",
        "DestinationOfAnotherNamespace",
    )
    .await;
    assert!(message.contains(&a_id), "{message}");
    assert!(op.requests("POST", "/event_subscriptions").is_empty());

    // B tries to take over A's destination: refused, and B learns nothing of A.
    create_annotated(
        &cluster.client,
        &team_b,
        "hijack",
        json!({"events.ngrok.io/adopt-id": a_id}),
    )
    .await;
    let message = wait_reason(&b_destinations, "hijack", "False", "AdoptTargetInUse").await;
    for text in [message]
        .into_iter()
        .chain(event_notes(&cluster.client, &team_b).await)
    {
        assert!(
            !text.contains(&op.namespace) && !text.contains("a-sink"),
            "B sees A's resources: {text}"
        );
    }

    // B's subscription does not hold up A's deletion.
    op.delete_and_wait::<EventDestination>("a-sink").await;
    assert_eq!(op.requests("DELETE", "/event_destinations/{id}").len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn the_operator_key_serves_only_selected_namespaces() {
    let cluster = PrivateCluster::start().await;
    let selector = "tenancy.test/operator-key=allowed";
    let op = Operator::start_with(
        "unselected",
        Options {
            all_namespaces_of: Some(cluster.client.clone()),
            operator_key_namespace_selector: Some(selector.into()),
            ..Default::default()
        },
    )
    .await;

    op.create(&destination("audit", json!({"target": kinesis_role("a")})))
        .await;
    let message = wait_reason(
        &op.destinations(),
        "audit",
        "False",
        "OperatorKeyNotAllowed",
    )
    .await;
    assert!(message.contains("spec.apiKeyRef"), "{message}");
    assert!(op.emulator.requests().is_empty());

    // The team's own key works without the selector.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-key", "labels": {CREDENTIALS_LABEL.0: CREDENTIALS_LABEL.1}},
        "stringData": {"api-key": API_KEY}
    }))
    .unwrap();
    op.secrets()
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    op.create(&destination(
        "own-key",
        json!({"target": kinesis_role("b"), "apiKeyRef": {"name": "team-key", "key": "api-key"}}),
    ))
    .await;
    op.wait_ready("own-key").await;

    // The platform team selects the namespace: its waiting resource converges by itself.
    Api::<Namespace>::all(cluster.client.clone())
        .patch(
            &op.namespace,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"tenancy.test/operator-key": "allowed"}}}),
            ),
        )
        .await
        .unwrap();
    op.wait_ready("audit").await;
    op.stop().await;
}

/// Writes `key` into `path` the way the kubelet updates a mounted Secret: a new file renamed
/// over the old one.
fn write_key_file(path: &std::path::Path, key: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, key).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn a_rotated_operator_key_file_is_used_without_a_restart() {
    const ROTATED: &str = "rotated-api-key-9876543210";
    let (client, namespace) = common::cluster_with_namespace("key-file").await.unwrap();
    let emulator = ngrok_api_emulator::Emulator::builder()
        .api_key(API_KEY)
        .second_key(API_KEY, ROTATED)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let log_dir = process::log_dir("key-file");
    let key_file = log_dir.join("api-key");
    write_key_file(&key_file, &format!("{API_KEY}\n"));
    let mut operator = OperatorProcess::spawn(&Spec {
        label: "operator".into(),
        log_dir,
        kubeconfig: process::kubeconfig().await,
        api_url: emulator.base_url(),
        api_key: String::new(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        extra_args: vec!["--api-key-file".into(), key_file.display().to_string()],
    })
    .unwrap();
    operator.wait_http_ok("/readyz", WAIT).await.unwrap();
    let destinations = Api::<EventDestination>::namespaced(client.clone(), &namespace);
    destinations
        .create(
            &Default::default(),
            &destination("audit", json!({"target": kinesis_role("a")})),
        )
        .await
        .unwrap();
    wait_reason(&destinations, "audit", "True", "Synced").await;

    // Rotate: the new key in the file, then the old one revoked in ngrok.
    write_key_file(&key_file, ROTATED);
    testbed::eventually("the operator reads the new key", WAIT, || {
        let logs = operator.log_lines();
        async move {
            logs.iter()
                .any(|l| l.contains("read a new operator-wide API key"))
                .then_some(())
        }
    })
    .await
    .unwrap();
    emulator.revoke_key(API_KEY);
    let patch = json!({"spec": {"description": "after rotation"}});
    destinations
        .patch("audit", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let updated = common::wait_ready_reason(&destinations, "audit", "True", "Synced").await;
    let id = updated.status.unwrap().id.unwrap();
    let config = ngrok_api::ClientConfig::new(ROTATED)
        .with_base_url(&emulator.base_url())
        .unwrap();
    let remote = ngrok_api::Client::new(config)
        .unwrap()
        .get_event_destination(&id)
        .await
        .unwrap();
    assert_eq!(remote.description, "after rotation");
    assert!(
        operator.try_exit_status().unwrap().is_none(),
        "{}",
        operator.log_tail(20)
    );
    testbed::delete_namespace(&client, &namespace).await;
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Every reconcile of EventDestinations the process has finished, whatever its result.
async fn reconciles(operator: &OperatorProcess) -> f64 {
    process::samples(
        &operator.metrics().await,
        "ngrok_events_operator_reconciles_total",
    )
    .into_iter()
    .filter(|(labels, _)| {
        labels
            .iter()
            .any(|(k, v)| k == "kind" && v == "EventDestination")
    })
    .map(|(_, value)| value)
    .sum()
}

#[tokio::test]
async fn rotating_a_huge_api_key_ref_leaves_memory_flat() {
    const ROTATIONS: usize = 40;
    const WARM_UP: usize = 5;
    let (client, namespace) = common::cluster_with_namespace("key-churn").await.unwrap();
    let emulator = Options::default().emulator.spawn().await.unwrap();
    let mut operator = OperatorProcess::spawn(&Spec {
        label: "operator".into(),
        log_dir: process::log_dir("key-churn"),
        kubeconfig: process::kubeconfig().await,
        api_url: emulator.base_url(),
        api_key: String::new(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        extra_args: vec![],
    })
    .unwrap();
    operator.wait_http_ok("/readyz", WAIT).await.unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    let secret = |value: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "team-key", "labels": {CREDENTIALS_LABEL.0: CREDENTIALS_LABEL.1}},
            "stringData": {"api-key": value}
        }))
        .unwrap()
    };
    secrets
        .create(&Default::default(), &secret(API_KEY))
        .await
        .unwrap();
    let destinations = Api::<EventDestination>::namespaced(client.clone(), &namespace);
    destinations
        .create(
            &Default::default(),
            &destination(
                "audit",
                json!({"target": kinesis_role("a"), "apiKeyRef": {"name": "team-key", "key": "api-key"}}),
            ),
        )
        .await
        .unwrap();
    wait_reason(&destinations, "audit", "True", "Synced").await;

    let mut baseline = 0;
    for rotation in 0..ROTATIONS {
        // 512 KiB of junk: each value is a new "account" to the operator.
        let junk: String = (0..512 * 1024)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        let before = reconciles(&operator).await;
        secrets
            .replace("team-key", &Default::default(), &secret(&junk))
            .await
            .unwrap();
        testbed::eventually("a reconcile with the new value", WAIT, || async {
            (reconciles(&operator).await > before).then_some(())
        })
        .await
        .unwrap();
        if rotation + 1 == WARM_UP {
            baseline = rss_kib(operator.pid);
        }
    }
    // Back to the real key: the resource still works.
    secrets
        .replace("team-key", &Default::default(), &secret(API_KEY))
        .await
        .unwrap();
    let patch = json!({"spec": {"description": "still served"}});
    destinations
        .patch("audit", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    common::wait_ready_reason(&destinations, "audit", "True", "Synced").await;
    let after = rss_kib(operator.pid);
    eprintln!(
        "RSS after {WARM_UP} rotations: {baseline} KiB; after {ROTATIONS}: {after} KiB (growth {} KiB)",
        after as i64 - baseline as i64
    );
    // Before accounts were evicted, each rotation kept ~1.7 MiB for good (70 MiB for 40).
    assert!(
        after < baseline + 8 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB over {} rotations",
        ROTATIONS - WARM_UP
    );
    assert!(operator.try_exit_status().unwrap().is_none());
    testbed::delete_namespace(&client, &namespace).await;
}
