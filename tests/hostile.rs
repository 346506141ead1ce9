//! Hostile tenants: one operator shared by namespaces that do not trust each other. Nothing a
//! tenant writes may crash it, starve the others, reach into another namespace, read Secrets
//! that were not made for it, or grow its memory without bound; the operator-wide key is the
//! platform team's to hand out and rotate.
//!
//! Credentials are opt-in: only Secrets labelled `events.ngrok.io/credentials=true` may be
//! referenced, and Secrets are watched for their metadata only, selected by that label (the
//! tests named `credentials_…`).
//!
//! Tests that need an operator watching several namespaces run it against a test bed of their
//! own ([`PrivateCluster`]), so that it sees no other test's resources.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::process::{self, OperatorProcess, Spec};
use common::{
    API_KEY, CREDENTIALS_LABEL, Kind, Operator, Options, PrivateCluster, WAIT, destination,
    kinesis_role, ready_message, subscription,
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;
use test_support::metrics::samples;

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
async fn wait_reason<K: Kind>(api: &Api<K>, name: &str, status: &str, reason: &str) -> String {
    ready_message(&common::wait_ready_reason(api, name, status, reason).await)
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
            // Every namespace may adopt: B's attempt is refused for taking A's destination.
            adoption_namespace_selector: Some(common::EVERY_NAMESPACE.into()),
            ..Default::default()
        },
    )
    .await;
    let team_b = testbed::namespace(&cluster.client, "team-b").await.unwrap();
    let b_subscriptions = Api::<EventSubscription>::namespaced(cluster.client.clone(), &team_b);
    let b_destinations = Api::<EventDestination>::namespaced(cluster.client.clone(), &team_b);

    op.create(&destination("a-sink", json!({"target": kinesis_role("a")})))
        .await;
    let a_id = op.wait_ready_id::<EventDestination>("a-sink").await;

    // B names A's destination by id: refused before any call, without naming A's resources.
    let subscription = subscription(
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
        &op.api::<EventDestination>(),
        "audit",
        "False",
        "OperatorKeyNotAllowed",
    )
    .await;
    assert!(message.contains("spec.apiKeyRef"), "{message}");
    assert!(op.emulator.requests().is_empty());

    // The team's own key works without the selector.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "team-key", "labels": {CREDENTIALS_LABEL: "true"}},
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
    op.wait_ready::<EventDestination>("own-key").await;

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
    op.wait_ready::<EventDestination>("audit").await;
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
    let id = updated.status.unwrap().common.id.unwrap();
    let config = ngrok_api::ClientConfig::new(ROTATED)
        .with_base_url(&emulator.base_url())
        .unwrap();
    let remote = ngrok_api::Client::new(config)
        .unwrap()
        .get::<ngrok_api::types::EventDestination>(&id)
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
    samples(
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
async fn rotating_an_api_key_ref_leaves_memory_flat() {
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
    let secret = |value: &str| {
        common::secret(
            "team-key",
            &[("api-key", value)],
            &[(CREDENTIALS_LABEL, "true")],
        )
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
        // Junk as long as a key may be (longer is refused before any account exists, see
        // tests/tenant_bounds.rs): each value is a new "account" to the operator.
        let junk: String = (0..ngrok_events_operator::secrets::MAX_API_KEY_BYTES)
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

fn datadog(secret: &str) -> serde_json::Value {
    json!({"datadog": {"apiKeyRef": {"name": secret, "key": "api-key"}}})
}

fn labelled() -> serde_json::Value {
    json!({"metadata": {"labels": {CREDENTIALS_LABEL: "true"}}})
}

#[tokio::test]
async fn credentials_an_unlabelled_secret_stalls_both_kinds_without_calling_ngrok_until_labelled() {
    let op = Operator::start("unlabelled").await;
    let ns = op.namespace.clone();
    // Two Secrets that were not made for the operator: an API key and a target credential.
    op.create_secret_labelled("ngrok", &[("api-key", API_KEY)], &[])
        .await;
    op.create_secret_labelled("dd", &[("api-key", "dd-value-1")], &[])
        .await;
    let mut d = destination("d", json!({"target": datadog("dd")}));
    d.spec.api_key_ref =
        Some(serde_json::from_value(json!({"name": "ngrok", "key": "api-key"})).unwrap());
    op.create(&d).await;
    op.create(&subscription(
        "s",
        json!({"sources": [{"type": "http_request_complete.v0"}], "destinationRefs": [{"name": "d"}],
               "apiKeyRef": {"name": "ngrok", "key": "api-key"}}),
    ))
    .await;

    let command = |secret: &str| {
        format!("kubectl label secret {secret} -n {ns} events.ngrok.io/credentials=true")
    };
    let stalled = op
        .wait_condition::<EventDestination>("d", "Stalled", "SecretNotLabeled")
        .await;
    assert_eq!(
        ready_message(&stalled),
        format!(
            r#"Secret "ngrok" is not labelled for use by ngrok resources; if it is meant for them, label it: {}"#,
            command("ngrok")
        )
    );
    let stalled: EventSubscription = op.wait_condition("s", "Stalled", "SecretNotLabeled").await;
    assert!(
        ready_message(&stalled).ends_with(&command("ngrok")),
        "{}",
        ready_message(&stalled)
    );
    assert!(
        op.wait_event("s", "SecretNotLabeled")
            .await
            .ends_with(&command("ngrok"))
    );
    assert!(op.emulator.requests().is_empty(), "no call to ngrok");

    // The API key's Secret labelled: the target's Secret is next, still without a call.
    op.patch_secret("ngrok", labelled()).await;
    let stalled = testbed::wait_for(
        &op.api::<EventDestination>(),
        "d",
        |d: Option<&EventDestination>| {
            d.is_some_and(|d| ready_message(d).contains(r#"Secret "dd""#))
        },
        WAIT,
    )
    .await
    .unwrap();
    assert!(ready_message(&stalled).ends_with(&command("dd")));
    assert!(op.emulator.requests().is_empty(), "no call to ngrok");

    op.patch_secret("dd", labelled()).await;
    assert!(
        op.wait_ready::<EventDestination>("d")
            .await
            .status
            .unwrap()
            .common
            .id
            .is_some()
    );
    op.wait_ready::<EventSubscription>("s").await;
    assert_eq!(op.requests("POST", "/event_destinations").len(), 1);
    assert_eq!(op.requests("POST", "/event_subscriptions").len(), 1);
    op.stop().await;
}

#[tokio::test]
async fn credentials_without_the_label_requirement_any_secret_of_the_namespace_works() {
    let op = Operator::start_with(
        "unrequired",
        Options {
            require_credentials_label: false,
            ..Default::default()
        },
    )
    .await;
    op.create_secret_labelled("dd", &[("api-key", "dd-value-1")], &[])
        .await;
    op.create(&destination("d", json!({"target": datadog("dd")})))
        .await;
    op.wait_ready::<EventDestination>("d").await;

    // Its changes are still seen: the unfiltered Secret watch triggers the resource.
    op.patch_secret("dd", json!({"stringData": {"api-key": "dd-value-2"}}))
        .await;
    op.wait_event("d", "Updated").await;
    op.stop().await;
}

/// Unrelated Secrets in the operator's namespace: Helm keeps one per release revision, and a
/// third were made with `kubectl apply`, whose last-applied-configuration annotation (metadata,
/// so part of even a metadata-only listing) holds their data again.
const UNRELATED_SECRETS: usize = 150;
const UNRELATED_SECRET_BYTES: usize = 100 * 1024;

fn unrelated_secret(i: usize, payload: &str) -> Secret {
    let name = format!("sh.helm.release.v1.app.v{i}");
    let annotations = i.is_multiple_of(3).then(|| {
        let applied = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                             "stringData": {"release": payload}});
        [(
            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
            applied.to_string(),
        )]
        .into()
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some([("owner".to_string(), "helm".to_string())].into()),
            annotations,
            ..Default::default()
        },
        type_: Some("helm.sh/release.v1".into()),
        string_data: Some([("release".to_string(), payload.to_string())].into()),
        ..Default::default()
    }
}

/// A TCP proxy in front of the API server that counts the bytes it passes back: what the one
/// client given [`CountingProxy::kubeconfig`] reads from the API server, TLS included.
struct CountingProxy {
    kubeconfig: std::path::PathBuf,
    received: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on a free loopback port, and writes a copy of the test bed's kubeconfig that
    /// points there into `dir`.
    async fn to_api_server(dir: &std::path::Path) -> Self {
        let original = process::kubeconfig().await;
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&original).unwrap()).unwrap();
        let server = &mut config["clusters"][0]["cluster"]["server"];
        let url = server.as_str().expect("a server URL").to_string();
        let upstream = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *server = format!("https://{}", listener.local_addr().unwrap()).into();
        let kubeconfig = dir.join("proxied-kubeconfig");
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
        let received = Arc::new(AtomicU64::new(0));
        tokio::spawn({
            let received = received.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, upstream.clone(), received.clone()));
                }
            }
        });
        CountingProxy {
            kubeconfig,
            received,
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Copies one connection both ways, counting what comes back from `upstream`.
async fn relay(mut client: tokio::net::TcpStream, upstream: String, received: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let responses = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buffer).await?;
            if n == 0 {
                return client_write.shutdown().await;
            }
            received.fetch_add(n as u64, Ordering::Relaxed);
            client_write.write_all(&buffer[..n]).await?;
        }
    };
    let _ = tokio::join!(requests, responses);
}

/// The API server's `apiserver_response_sizes` for Secrets: bytes it sent by verb
/// (`_sum`), and how many namespace-wide listings it answered (`_count`).
async fn secret_bytes_sent(client: &kube::Client) -> (BTreeMap<String, f64>, f64) {
    // axum re-exports the `http` crate that kube uses.
    let request = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .unwrap();
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let mut by_verb = BTreeMap::new();
    let mut namespace_lists = 0.0;
    for (labels, value) in samples(&text, "apiserver_response_sizes_count") {
        let has = |name: &str, value: &str| labels.iter().any(|(n, v)| n == name && v == value);
        if has("resource", "secrets") && has("verb", "LIST") && has("scope", "namespace") {
            namespace_lists += value;
        }
    }
    for (labels, value) in samples(&text, "apiserver_response_sizes_sum") {
        let label = |name: &str| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if label("resource") == "secrets" && label("group").is_empty() {
            *by_verb.entry(label("verb")).or_default() += value;
        }
    }
    (by_verb, namespace_lists)
}

/// The operator binary (`extra_args` added) and an emulator, serving one datadog
/// EventDestination `d` whose Secret `dd` carries `labels`; returns once `d` is Ready.
async fn binary_serving_datadog(
    client: &kube::Client,
    namespace: &str,
    test: &str,
    kubeconfig: std::path::PathBuf,
    extra_args: &[&str],
    labels: &[(&str, &str)],
) -> (OperatorProcess, ngrok_api_emulator::EmulatorHandle) {
    let emulator = Options::default().emulator.spawn().await.expect("emulator");
    let operator = OperatorProcess::spawn(&Spec {
        label: "operator".into(),
        log_dir: process::log_dir(test),
        kubeconfig,
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: namespace.into(),
        metrics_addr: process::free_addr(),
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
    })
    .expect("start the operator");
    kube::Api::<Secret>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &common::secret("dd", &[("api-key", "dd-value-1")], labels),
        )
        .await
        .unwrap();
    let destinations: kube::Api<EventDestination> =
        kube::Api::namespaced(client.clone(), namespace);
    destinations
        .create(
            &PostParams::default(),
            &destination("d", json!({"target": datadog("dd")})),
        )
        .await
        .unwrap();
    let ready = |d: Option<&EventDestination>| {
        d.is_some_and(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.common
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
    };
    if let Err(e) = testbed::wait_for(&destinations, "d", ready, WAIT).await {
        panic!("{e:#}\n{}", operator.log_tail(40));
    }
    (operator, emulator)
}

#[tokio::test]
async fn credentials_the_binary_flag_turns_the_requirement_off() {
    let (client, namespace) = common::cluster_with_namespace("flag-off")
        .await
        .expect("test bed");
    let (mut operator, emulator) = binary_serving_datadog(
        &client,
        &namespace,
        "flag-off",
        process::kubeconfig().await,
        &["--require-credentials-label=false"],
        &[],
    )
    .await;
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        1
    );
    operator.sigterm().unwrap();
    operator.wait_exit(Duration::from_secs(10)).await.unwrap();
    testbed::delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn credentials_the_operator_reads_no_unrelated_secret_data() {
    let (client, namespace) = common::cluster_with_namespace("unrelated-secrets")
        .await
        .expect("test bed");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &namespace);
    let payload = "x".repeat(UNRELATED_SECRET_BYTES);
    futures::stream::iter(0..UNRELATED_SECRETS)
        .map(|i| {
            let (secrets, payload) = (secrets.clone(), payload.clone());
            async move {
                secrets
                    .create(&PostParams::default(), &unrelated_secret(i, &payload))
                    .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .expect("create the unrelated Secrets");
    let proxy = CountingProxy::to_api_server(&process::log_dir("unrelated-secrets-proxy")).await;
    let (before, lists_before) = secret_bytes_sent(&client).await;
    let (mut operator, emulator) = binary_serving_datadog(
        &client,
        &namespace,
        "unrelated-secrets",
        proxy.kubeconfig.clone(),
        &[],
        &[(CREDENTIALS_LABEL, "true")],
    )
    .await;
    // A changed value reaches ngrok.
    secrets
        .patch(
            "dd",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"api-key": "dd-value-2"}})),
        )
        .await
        .unwrap();
    testbed::eventually("the new value sent to ngrok", WAIT, || async {
        let patches = emulator
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .count();
        (patches >= 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail(40)));
    // The operator's listing of Secrets is in the figures (the watch may start after the
    // resource is Ready: its own status write can be what sent the new value).
    let after = testbed::eventually("the operator's listing of Secrets", WAIT, || async {
        let (after, lists) = secret_bytes_sent(&client).await;
        (lists > lists_before).then_some(after)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail(40)));

    let read: BTreeMap<&str, f64> = after
        .iter()
        .map(|(verb, sum)| {
            (
                verb.as_str(),
                sum - before.get(verb).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, bytes)| *bytes > 0.0)
        .collect();
    let total: f64 = read.values().sum();
    let from_api_server = proxy.received();
    println!(
        "with {UNRELATED_SECRETS} unrelated Secrets of {UNRELATED_SECRET_BYTES} bytes, while the operator started and reconciled: it received {from_api_server} bytes from the API server (everything, TLS included); the API server sent {total} bytes of Secrets to all its clients ({read:?})"
    );
    // The API server's metric counts every client (the test bed's controller manager lists
    // Secrets too, now and then): the proxy counts what this operator alone received.
    assert!(
        from_api_server < 512 * 1024,
        "the operator received {from_api_server} bytes from the API server; the unrelated Secrets hold {} bytes",
        UNRELATED_SECRETS * UNRELATED_SECRET_BYTES
    );
    operator.sigterm().unwrap();
    operator.wait_exit(Duration::from_secs(10)).await.unwrap();
    testbed::delete_namespace(&client, &namespace).await;
}
