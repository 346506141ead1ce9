use ngrok_api::types::{AwsAuth, AwsCredentials, EventTarget, EventTargetKinesis};

use super::*;

fn remote(id: &str, description: &str) -> Remote {
    Remote {
        id: id.into(),
        uri: format!("https://api.ngrok.com/event_destinations/{id}"),
        created_at: "2024-08-02T07:15:39Z".into(),
        metadata: String::new(),
        description: description.into(),
        format: "json".into(),
        target: EventTarget::Kinesis(EventTargetKinesis {
            stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
            auth: AwsAuth::Creds(AwsCredentials {
                aws_access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                aws_secret_access_key: None,
            }),
        }),
    }
}

#[test]
fn names_are_valid_unique_and_resources_adopt_their_destination() {
    let yaml = render(
        &[
            remote("ed_1", "Audit → Kinesis (prod)"),
            remote("ed_2", "Audit → Kinesis (prod)"),
            remote("ed_3", ""),
        ],
        &[],
        "platform",
        false,
    );
    let resources: Vec<EventDestination> = typed(&yaml);
    let names: Vec<_> = resources
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        ["audit-kinesis-prod", "audit-kinesis-prod-2", "ed-3"]
    );
    assert_eq!(
        resources[0].metadata.annotations.as_ref().unwrap()[ADOPT_ID_ANNOTATION],
        "ed_1"
    );
    assert_eq!(resources[0].metadata.namespace.as_deref(), Some("platform"));
    assert!(yaml.contains(
        "# kubectl create secret generic audit-kinesis-prod-credentials -n platform --from-literal=aws-access-key-id=AKIAIOSFODNN7EXAMPLE --from-literal=aws-secret-access-key=<fill in>"
    ));
    assert!(yaml.contains(
        "# kubectl label secret audit-kinesis-prod-credentials -n platform events.ngrok.io/credentials=true"
    ));
    assert!(!yaml.contains("status"));
}

/// Every document of a YAML stream, as plain values (comments alone are no document).
fn documents(yaml: &str) -> Vec<serde_yaml::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|doc: &serde_yaml::Value| !doc.is_null())
        .collect()
}

/// The documents as resources, read as the API server reads them: enum variants are keys
/// (serde_yaml would want YAML tags).
fn typed<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
    documents(yaml)
        .into_iter()
        .map(|doc| serde_json::from_value(serde_json::to_value(doc).unwrap()).unwrap())
        .collect()
}

fn assert_untagged(value: &serde_yaml::Value) {
    match value {
        serde_yaml::Value::Tagged(tagged) => panic!("YAML tag {}", tagged.tag),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(assert_untagged),
        serde_yaml::Value::Mapping(map) => map.values().for_each(assert_untagged),
        _ => {}
    }
}

/// kubectl and the API server know no YAML tags: enum variants must be plain keys.
#[test]
fn targets_are_plain_keys_not_yaml_tags() {
    let yaml = render(&[remote("ed_1", "audit")], &[], "platform", false);
    let docs = documents(&yaml);
    assert_eq!(docs.len(), 1);
    assert_untagged(&docs[0]);
    assert_eq!(
        docs[0]["spec"]["target"]["kinesis"]["auth"]["creds"]["accessKeyIdRef"]["name"],
        "audit-credentials"
    );
}

/// Whatever ngrok returns, the output parses to exactly the expected documents: no value
/// ends a comment, opens a document or becomes a key; the shell hint stays harmless.
#[test]
fn output_is_safe_whatever_ngrok_returns() {
    let evil = "x\n---\napiVersion: v1\nkind: Secret # \"quoted\" 'single' $(id) `id`";
    let mut destination = remote(&format!("ed_1{evil}"), evil);
    destination.created_at = format!("2024-08-02T07:15:39Z{evil}");
    destination.metadata = evil.into();
    if let EventTarget::Kinesis(kinesis) = &mut destination.target {
        kinesis.auth = AwsAuth::Creds(AwsCredentials {
            aws_access_key_id: format!("AKIAIOSFODNN7EXAMPLE{evil}"),
            aws_secret_access_key: None,
        });
    }
    let subscription: RemoteSubscription = serde_json::from_value(serde_json::json!({
        "id": format!("esb_1{evil}"),
        "uri": "u",
        "created_at": evil,
        "description": evil,
        "metadata": evil,
        "sources": [{"type": "http_request_complete.v0"}],
        "destinations": [{"id": format!("ed_1{evil}")}, {"id": evil}]
    }))
    .unwrap();
    let yaml = render(
        std::slice::from_ref(&destination),
        std::slice::from_ref(&subscription),
        "platform",
        false,
    );

    let docs = documents(&yaml);
    let name = unique_name(evil, "", &mut HashSet::new());
    assert_eq!(name, "x-apiversion-v1-kind-secret-quoted-single-id-id");
    let (spec, _) = desired::spec_from_remote(&destination, &format!("{name}-credentials"));
    let mut expected_destination = EventDestination::new(&name, spec);
    expected_destination.metadata = adopting(&name, "platform", &destination.id, false);
    let mut expected_subscription = EventSubscription::new(
        &name,
        desired::subscription::spec_from_remote(
            &subscription,
            &[(destination.id.clone(), name.clone())].into(),
        ),
    );
    expected_subscription.metadata = adopting(&name, "platform", &subscription.id, false);
    let expected: Vec<serde_yaml::Value> = [
        serde_json::to_value(&expected_destination).unwrap(),
        serde_json::to_value(&expected_subscription).unwrap(),
    ]
    .iter()
    .map(|v| serde_yaml::to_value(v).unwrap())
    .collect();
    assert_eq!(docs, expected, "{yaml}");
    assert_eq!(docs[0]["spec"]["metadata"].as_str(), Some(evil));

    // Comments are single lines of harmless characters; the key id is not printed.
    let comments: Vec<&str> = yaml.lines().filter(|l| l.starts_with('#')).collect();
    // The header, one id line per resource, and the Secret hint (create, then label).
    assert_eq!(comments.len(), 4 + 1 + 1 + 2, "{yaml}");
    let hint = comments
        .iter()
        .find(|l| l.starts_with("# kubectl create secret"))
        .unwrap();
    assert!(hint.ends_with("--from-literal=aws-access-key-id=<fill in> --from-literal=aws-secret-access-key=<fill in>"), "{hint}");
    for comment in &comments[4..] {
        assert!(!comment.contains(['"', '\'', '$', '`']), "{comment}");
    }
    assert!(comments.contains(&"# ed_1x_---_apiVersion:_v1_kind:_Secret____quoted___single____id___id_ (created 2024-08-02T07:15:39Zx_---_apiVersion:_v1_kind:_Secret____quoted___single____id___id_)"), "{comments:#?}");
}

#[test]
fn subscriptions_name_imported_destinations_by_reference() {
    let subscription: RemoteSubscription = serde_json::from_value(serde_json::json!({
        "id": "esb_1",
        "uri": "https://api.ngrok.com/event_subscriptions/esb_1",
        "created_at": "2024-08-02T07:15:39Z",
        "description": "HTTP traffic",
        "sources": [{"type": "http_request_complete.v0", "filter": "ev.conn.server_port == 443",
                     "sampling_rate": 0.5, "bad\nname": "x"}],
        "destinations": [{"id": "ed_1"}, {"id": "ed_elsewhere"}]
    }))
    .unwrap();
    let yaml = render(
        &[remote("ed_1", "audit")],
        &[subscription],
        "platform",
        true,
    );
    let documents = documents(&yaml);
    let imported: EventSubscription =
        serde_json::from_value(serde_json::to_value(&documents[1]).unwrap()).unwrap();
    assert_eq!(imported.metadata.name.as_deref(), Some("http-traffic"));
    assert_eq!(
        imported.metadata.annotations.as_ref().unwrap()[ADOPT_ID_ANNOTATION],
        "esb_1"
    );
    // Imported with --observe: every resource observes.
    for document in &documents {
        assert_eq!(
            document["metadata"]["annotations"][MANAGEMENT_ANNOTATION],
            "observe"
        );
    }
    assert_eq!(
        imported.spec.destination_names().collect::<Vec<_>>(),
        ["audit"]
    );
    assert_eq!(imported.spec.destination_ids, ["ed_elsewhere"]);
    // The filter is carried; a field the spec cannot hold is named in a comment.
    assert_eq!(
        imported.spec.sources[0].filter.as_deref(),
        Some("ev.conn.server_port == 443")
    );
    let comments: Vec<&str> = yaml
        .lines()
        .filter(|l| l.contains("not in the spec"))
        .collect();
    assert_eq!(comments.len(), 2, "{yaml}");
    assert!(comments[0].contains("source http_request_complete.v0 has field bad_name in ngrok"));
    assert!(comments[1].contains("has field sampling_rate in ngrok"));
    assert!(!yaml.contains("0.5"), "names only");
    assert!(yaml.starts_with("# 1 ngrok event destination(s) and 1 subscription(s)"));
}
