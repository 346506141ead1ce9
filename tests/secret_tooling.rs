//! Secrets made by External Secrets Operator or sealed-secrets carry the credentials label the
//! operator requires, when their manifests say so as `examples/secret-tooling/` shows. Neither
//! controller runs here, so the test makes the Secret exactly as each would from its manifest
//! (name, labels and keys from the template; placeholder values), applies the example's
//! EventDestination, and waits for it to be Ready: a manifest without the label in the right
//! place would leave the destination Stalled with `SecretNotLabeled`.

mod common;

use std::collections::BTreeMap;

use common::Operator;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use ngrok_events_operator::crd::EventDestination;
use serde_json::Value;

/// Values of the right shape for each key the examples use.
fn placeholder(key: &str) -> &'static str {
    match key {
        "access-key-id" => "AKIAIOSFODNN7EXAMPLE",
        "secret-access-key" => "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        _ => "0123456789abcdef0123456789abcdef",
    }
}

/// The Secret External Secrets Operator writes for an `ExternalSecret`: named by
/// `spec.target.name` (else the ExternalSecret's name), with the template's labels and one key
/// per `spec.data[].secretKey`.
fn from_external_secret(manifest: &Value) -> (String, Value, Vec<String>) {
    let target = &manifest["spec"]["target"];
    let name = target["name"]
        .as_str()
        .or(manifest["metadata"]["name"].as_str())
        .unwrap()
        .to_string();
    let keys = manifest["spec"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["secretKey"].as_str().unwrap().to_string())
        .collect();
    (name, target["template"]["metadata"]["labels"].clone(), keys)
}

/// The Secret the sealed-secrets controller writes for a `SealedSecret`: its own name, the
/// labels of `spec.template.metadata`, one key per `spec.encryptedData` entry.
fn from_sealed_secret(manifest: &Value) -> (String, Value, Vec<String>) {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    let keys = manifest["spec"]["encryptedData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    (
        name,
        manifest["spec"]["template"]["metadata"]["labels"].clone(),
        keys,
    )
}

async fn destination_is_ready_with_the_secret_the_tool_makes(file: &str, prefix: &str) {
    let yaml = std::fs::read_to_string(common::repo_path(file)).unwrap();
    let documents = testbed::parse_documents::<Value>(&yaml).unwrap();
    let op = Operator::start(prefix).await;
    let mut destinations = Vec::new();
    for document in &documents {
        let made = match document["kind"].as_str().unwrap() {
            "ExternalSecret" => Some(from_external_secret(document)),
            "SealedSecret" => Some(from_sealed_secret(document)),
            "EventDestination" => {
                let destination: EventDestination =
                    serde_json::from_value(document.clone()).unwrap();
                destinations.push(destination);
                None
            }
            other => panic!("{file}: unexpected {other}"),
        };
        if let Some((name, labels, keys)) = made {
            let data: BTreeMap<String, String> = keys
                .iter()
                .map(|k| (k.clone(), placeholder(k).to_string()))
                .collect();
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "labels": labels},
                "stringData": data,
            }))
            .unwrap();
            op.secrets()
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
    }
    assert_eq!(destinations.len(), 1, "{file}: one EventDestination");
    for destination in destinations {
        let name = destination.metadata.name.clone().unwrap();
        op.create(&destination).await;
        op.wait_ready::<EventDestination>(&name).await;
    }
    op.stop().await;
}

#[tokio::test]
async fn a_secret_synced_by_external_secrets_operator_is_readable() {
    destination_is_ready_with_the_secret_the_tool_makes(
        "examples/secret-tooling/external-secrets.yaml",
        "eso",
    )
    .await;
}

#[tokio::test]
async fn a_secret_unsealed_by_sealed_secrets_is_readable() {
    destination_is_ready_with_the_secret_the_tool_makes(
        "examples/secret-tooling/sealed-secrets.yaml",
        "sealed",
    )
    .await;
}
