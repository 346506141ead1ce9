//! What the harness applies: the good EventDestinations of every run (targets rotating over the
//! five kinds, a third with credentials from a Secret of their own), the namespaces with their
//! unrelated Secrets and ConfigMaps (noise an operator that caches too much pays for), and the
//! parallel creates of Secrets and destinations, which return when each create was sent.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::environment::Env;

/// One EventDestination to create, and the Secret it needs (a third of them use credentials
/// from Secrets).
pub(crate) struct Planned {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) object: Value,
    pub(crate) secret: Option<Secret>,
}

impl Planned {
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A Secret the resources may read: labelled `events.ngrok.io/credentials=true`, as the
/// operator requires by default.
pub(crate) fn credentials_secret(
    namespace: &str,
    name: &str,
    data: BTreeMap<String, String>,
) -> Secret {
    let mut secret = secret(namespace, name, data);
    secret.metadata.labels = Some(BTreeMap::from([(
        "events.ngrok.io/credentials".to_string(),
        "true".to_string(),
    )]));
    secret
}

fn secret(namespace: &str, name: &str, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        string_data: Some(data),
        ..Default::default()
    }
}

pub(crate) fn destination_object(
    namespace: &str,
    name: &str,
    spec: Value,
    annotations: Value,
) -> Value {
    json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventDestination",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    })
}

/// The i-th good resource: targets rotate over the five kinds; i % 3 == 0 uses credentials from
/// a Secret of its own. Every description is unique, so no two have the same content.
pub(crate) fn good(namespace: &str, prefix: &str, i: usize) -> Planned {
    let name = format!("{prefix}-{i:05}");
    let description = format!("bench {namespace}/{name}");
    let role = json!({"role": {"roleArn": "arn:aws:iam::123456789012:role/bench"}});
    let creds_secret = format!("{name}-creds");
    let (target, secret_data): (Value, Option<BTreeMap<String, String>>) = match (i % 3, i % 2) {
        (0, 0) => (
            json!({"kinesis": {
                "streamArn": format!("arn:aws:kinesis:us-east-2:123456789012:stream/bench-{i}"),
                "auth": {"creds": {
                    "accessKeyIdRef": {"name": creds_secret, "key": "AWS_ACCESS_KEY_ID"},
                    "secretAccessKeyRef": {"name": creds_secret, "key": "AWS_SECRET_ACCESS_KEY"},
                }},
            }}),
            Some(BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".into(), format!("AKIABENCH{i:011}")),
                ("AWS_SECRET_ACCESS_KEY".into(), format!("bench-secret-{i}")),
            ])),
        ),
        (0, _) if i % 4 == 1 || i % 4 == 3 => (
            json!({"datadog": {"apiKeyRef": {"name": creds_secret, "key": "api-key"}, "ddsite": "datadoghq.com"}}),
            Some(BTreeMap::from([("api-key".into(), format!("{:032x}", i))])),
        ),
        (0, _) => (
            json!({"azureLogsIngestion": {
                "tenantId": "00000000-0000-0000-0000-000000000001",
                "clientId": "00000000-0000-0000-0000-000000000002",
                "clientSecretRef": {"name": creds_secret, "key": "client-secret"},
                "logsIngestionUri": "https://bench.eastus-1.ingest.monitor.azure.com",
                "dataCollectionRuleId": "dcr-0123456789abcdef0123456789abcdef",
                "dataCollectionStreamName": "Custom-NgrokEvents",
            }}),
            Some(BTreeMap::from([(
                "client-secret".into(),
                format!("bench~secret~{i}"),
            )])),
        ),
        (1, _) => (
            json!({"firehose": {
                "deliveryStreamArn": format!("arn:aws:firehose:us-east-2:123456789012:deliverystream/bench-{i}"),
                "auth": role,
            }}),
            None,
        ),
        _ => (
            json!({"cloudwatchLogs": {
                "logGroupArn": format!("arn:aws:logs:us-east-2:123456789012:log-group:bench-{i}"),
                "auth": role,
            }}),
            None,
        ),
    };
    Planned {
        namespace: namespace.into(),
        object: destination_object(
            namespace,
            &name,
            json!({"description": description, "target": target}),
            json!({}),
        ),
        secret: secret_data.map(|data| credentials_secret(namespace, &creds_secret, data)),
        name,
    }
}

/// Creates namespaces, then `n` unrelated Secrets and `n` unrelated ConfigMaps spread over them
/// (nothing references them: an operator that caches what it does not need pays for them).
pub(crate) async fn make_namespaces_and_noise(
    env: &Env,
    namespaces: &[String],
    n: usize,
) -> Result<()> {
    for namespace in namespaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
    }
    let payload: String = "x".repeat(env.config.payload_bytes);
    let jobs = (0..n).flat_map(|i| {
        let namespace = namespaces[i % namespaces.len()].clone();
        [(namespace.clone(), i, true), (namespace, i, false)]
    });
    let results: Vec<Result<()>> = futures::stream::iter(jobs)
        .map(|(namespace, i, is_secret)| {
            let client = env.client.clone();
            let payload = payload.clone();
            async move {
                let name = format!("unrelated-{i:05}");
                let data = BTreeMap::from([("payload".to_string(), payload)]);
                if is_secret {
                    Api::<Secret>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &secret(&namespace, &name, data))
                        .await?;
                } else {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(name),
                            namespace: Some(namespace.clone()),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    Api::<ConfigMap>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &cm)
                        .await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(env.config.apply_parallelism)
        .collect()
        .await;
    results.into_iter().collect()
}

pub(crate) async fn create_secrets(env: &Env, planned: &[Planned]) -> Result<()> {
    let results: Vec<Result<()>> =
        futures::stream::iter(planned.iter().filter_map(|p| p.secret.clone()))
            .map(|s| {
                let client = env.client.clone();
                async move {
                    let namespace = s.metadata.namespace.clone().unwrap_or_default();
                    Api::<Secret>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &s)
                        .await?;
                    Ok(())
                }
            })
            .buffer_unordered(env.config.apply_parallelism)
            .collect()
            .await;
    results.into_iter().collect()
}

/// Creates the resources at once (`apply_parallelism` in flight); returns when each create was
/// sent, by key.
pub(crate) async fn create_destinations(
    env: &Env,
    planned: &[Planned],
) -> Result<HashMap<String, Instant>> {
    let results: Vec<Result<(String, Instant)>> = futures::stream::iter(planned)
        .map(|p| async move {
            let object: DynamicObject = serde_json::from_value(p.object.clone())?;
            let sent = Instant::now();
            env.destinations(&p.namespace)
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {}", p.key()))?;
            Ok((p.key(), sent))
        })
        .buffer_unordered(env.config.apply_parallelism)
        .collect()
        .await;
    results.into_iter().collect()
}

/// `n` good destinations spread over the namespaces `prefix-0…` (`count` of them): the
/// namespaces, the destinations and their keys.
pub(crate) fn good_destinations(
    prefix: &str,
    count: usize,
    n: usize,
) -> (Vec<String>, Vec<Planned>, Vec<String>) {
    let namespaces = namespaces(prefix, count);
    let planned: Vec<Planned> = (0..n)
        .map(|i| good(&namespaces[i % namespaces.len()], "ed", i))
        .collect();
    let keys = planned.iter().map(Planned::key).collect();
    (namespaces, planned, keys)
}

pub(crate) fn namespaces(prefix: &str, count: usize) -> Vec<String> {
    (0..count.max(1)).map(|i| format!("{prefix}-{i}")).collect()
}
