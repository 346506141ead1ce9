//! Every example a user may copy (the README's YAML blocks and `examples/`) is sent through the
//! emulator's validation exactly as the operator would send it: the spec becomes ngrok's
//! request through `desired`, with a value for each Secret key it references. The schema side
//! (the API server accepts them) is `tests/crd.rs`.

mod common;

use std::collections::HashMap;

use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use ngrok_events_operator::desired;
use ngrok_events_operator::secrets::SecretValues;

/// The YAML documents of every example, with where each comes from.
fn examples() -> Vec<(String, serde_json::Value)> {
    let mut sources = Vec::new();
    let readme = std::fs::read_to_string(common::repo_path("README.md")).unwrap();
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("\n```").next().unwrap();
        sources.push((format!("README.md yaml block {}", i + 1), block.to_string()));
    }
    let mut files: Vec<_> = std::fs::read_dir(common::repo_path("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        sources.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    sources
        .into_iter()
        .flat_map(|(origin, yaml)| {
            testbed::parse_documents::<serde_json::Value>(&yaml)
                .unwrap_or_else(|e| panic!("{origin}: {e:#}"))
                .into_iter()
                .map(move |doc| (origin.clone(), doc))
        })
        .collect()
}

/// A value for every Secret key a destination references; an access key id looks like one.
fn secret_values(destination: &EventDestination) -> SecretValues {
    SecretValues::from_pairs(destination.spec.target.secret_refs().into_iter().map(|r| {
        let value = if r.key.contains("access-key-id") {
            "AKIAIOSFODNN7EXAMPLE"
        } else {
            "example-secret-value"
        };
        (r.clone(), ngrok_api::Secret::new(value))
    }))
}

#[tokio::test]
async fn every_example_is_accepted_by_ngrok_as_the_operator_sends_it() {
    let emulator = ngrok_api_emulator::Emulator::builder()
        .api_key(common::API_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .unwrap();
    let config = ngrok_api::ClientConfig::new(common::API_KEY)
        .with_base_url(&emulator.base_url())
        .unwrap();
    let ngrok = ngrok_api::Client::new(config).unwrap();
    let examples = examples();

    // Destinations first, so that subscriptions can name them; by origin and name.
    let mut ids: HashMap<(String, String), String> = HashMap::new();
    let mut sent = (0, 0);
    for (origin, doc) in &examples {
        if doc["kind"] != "EventDestination" {
            continue;
        }
        let destination: EventDestination = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{origin}: not an EventDestination: {e}"));
        let request = desired::destination(&destination.spec, &secret_values(&destination))
            .unwrap_or_else(|e| panic!("{origin}: the operator would refuse it: {e}"));
        let created = ngrok
            .create::<ngrok_api::types::EventDestination>(&request)
            .await
            .unwrap_or_else(|e| panic!("{origin}: ngrok refuses it: {e}"));
        let name = destination.metadata.name.clone().unwrap();
        ids.insert((origin.clone(), name), created.id);
        sent.0 += 1;
    }
    let any_destination = ids.values().next().unwrap().clone();
    for (origin, doc) in &examples {
        if doc["kind"] != "EventSubscription" {
            continue;
        }
        let subscription: EventSubscription = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{origin}: not an EventSubscription: {e}"));
        // A ref resolves to the destination of that name in the same file, as in one namespace.
        let resolved: Vec<String> = subscription
            .spec
            .destination_names()
            .map(|name| {
                ids.get(&(origin.clone(), name.to_string()))
                    .cloned()
                    .unwrap_or_else(|| any_destination.clone())
            })
            .collect();
        let request = desired::subscription::desired(&subscription.spec, &resolved)
            .unwrap_or_else(|e| panic!("{origin}: the operator would refuse it: {e}"));
        ngrok
            .create::<ngrok_api::types::EventSubscription>(&request)
            .await
            .unwrap_or_else(|e| panic!("{origin}: ngrok refuses it: {e}"));
        sent.1 += 1;
    }
    // The README's destination and subscription, and examples/ (8 destinations, 1
    // subscription): an example that stopped being recognised would otherwise pass unnoticed.
    assert!(sent.0 >= 9 && sent.1 >= 2, "examples sent: {sent:?}");
    emulator.shutdown().await;
}
