//! A shared operator and tenants who do not trust each other: what one namespace can make the
//! operator do must stay within what that namespace may do itself.
//!
//! Credentials are opt-in: only Secrets labelled `events.ngrok.io/credentials=true` may be
//! referenced, and Secrets are watched for their metadata only, selected by that label.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::process::{self, OperatorProcess, Spec, samples};
use common::{API_KEY, CREDENTIALS_LABEL, Operator, Options, WAIT, destination, subscription};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::json;

fn datadog(secret: &str) -> serde_json::Value {
    json!({"datadog": {"apiKeyRef": {"name": secret, "key": "api-key"}}})
}

fn labelled() -> serde_json::Value {
    json!({"metadata": {"labels": {CREDENTIALS_LABEL: "true"}}})
}

/// The Ready condition's message of a resource.
fn ready_message<K: ngrok_events_operator::reconcile::Managed>(resource: &K) -> String {
    use ngrok_events_operator::reconcile::ManagedStatus;
    resource
        .status()
        .and_then(|s| s.conditions().iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
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
    op.create_subscription(&subscription(
        "s",
        json!({"sources": [{"type": "http_request_complete.v0"}], "destinationRefs": [{"name": "d"}],
               "apiKeyRef": {"name": "ngrok", "key": "api-key"}}),
    ))
    .await;

    let command = |secret: &str| {
        format!("kubectl label secret {secret} -n {ns} events.ngrok.io/credentials=true")
    };
    let stalled = op.wait_condition("d", "Stalled", "SecretNotLabeled").await;
    assert_eq!(
        ready_message(&stalled),
        format!(
            r#"Secret "ngrok" is not labelled for use by ngrok resources; if it is meant for them, label it: {}"#,
            command("ngrok")
        )
    );
    let stalled: EventSubscription = op
        .wait_condition_of("s", "Stalled", "SecretNotLabeled")
        .await;
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
        &op.destinations(),
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
    assert!(op.wait_ready("d").await.status.unwrap().id.is_some());
    op.wait_subscription_ready("s").await;
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
    op.wait_ready("d").await;

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
    let emulator = ngrok_api_emulator::Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .expect("emulator");
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
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("dd".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        string_data: Some([("api-key".to_string(), "dd-value-1".to_string())].into()),
        ..Default::default()
    };
    kube::Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
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
                s.conditions
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
