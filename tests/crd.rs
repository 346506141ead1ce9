//! The EventDestination and EventSubscription CRDs: generated artefacts, installation, examples and schema validation,
//! proven against a real kube-apiserver.

mod common;

use common::{cluster_with_namespace, repo_path};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::runtime::wait::Condition;
use ngrok_events_operator::crd::{EventDestination, EventSubscription};
use serde_json::{Value, json};
use test_support::creds_refs;

#[test]
fn committed_crds_match_the_code() {
    let generated = ngrok_events_operator::crd::files();
    for (file, yaml) in &generated {
        let committed = std::fs::read_to_string(repo_path("crds").join(file))
            .unwrap_or_else(|e| panic!("crds/{file} is missing ({e}); run: cargo run -- crd"));
        assert_eq!(
            &committed, yaml,
            "crds/{file} differs from the code; regenerate it with scripts/generate.sh"
        );
    }
    let mut committed: Vec<String> = std::fs::read_dir(repo_path("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut expected: Vec<String> = generated.into_iter().map(|(file, _)| file).collect();
    expected.sort();
    assert_eq!(
        committed, expected,
        "crds/ holds files the code does not generate"
    );
}

#[tokio::test]
async fn crds_are_established_with_their_names_columns_and_status_subresource() {
    let (client, namespace) = cluster_with_namespace("crd-names").await.unwrap();
    let destination_columns = [
        ("ID", 0),
        ("Target", 0),
        ("Ready", 0),
        ("Reason", 1),
        ("Age", 0),
    ];
    assert_crd(
        &client,
        "eventdestinations",
        "EventDestination",
        "ned",
        &destination_columns,
    )
    .await;
    let subscription_columns = [
        ("ID", 0),
        ("Sources", 0),
        ("Destinations", 0),
        ("Ready", 0),
        ("Reason", 1),
        ("Age", 0),
    ];
    assert_crd(
        &client,
        "eventsubscriptions",
        "EventSubscription",
        "nes",
        &subscription_columns,
    )
    .await;
    testbed::delete_namespace(&client, &namespace).await;
}

async fn assert_crd(
    client: &kube::Client,
    plural: &str,
    kind: &str,
    short_name: &str,
    expected_columns: &[(&str, i32)],
) {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(&format!("{plural}.events.ngrok.io"))
        .await
        .unwrap();
    assert!(testbed::crd_established().matches_object(Some(&crd)));
    let names = &crd.spec.names;
    assert_eq!(names.kind, kind);
    assert_eq!(
        names.short_names.as_deref(),
        Some(&[short_name.to_string()][..])
    );
    assert_eq!(
        names.categories.as_deref(),
        Some(&["ngrok".to_string()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<(&str, i32)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.priority.unwrap_or(0)))
        .collect();
    assert_eq!(columns, expected_columns);

    // `kubectl get ngrok` works through the category in discovery.
    let discovery = client
        .list_api_group_resources("events.ngrok.io/v1alpha1")
        .await
        .unwrap();
    let resource = discovery
        .resources
        .iter()
        .find(|r| r.name == plural)
        .unwrap();
    assert_eq!(
        resource.categories.as_deref(),
        Some(&["ngrok".to_string()][..])
    );
    assert_eq!(
        resource.short_names.as_deref(),
        Some(&[short_name.to_string()][..])
    );
}

#[tokio::test]
async fn every_example_is_accepted_and_defaults_are_filled_in() {
    let (client, namespace) = cluster_with_namespace("crd-examples").await.unwrap();
    let mut targets_and_auth = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo_path("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let yaml = std::fs::read_to_string(path).unwrap();
        for document in testbed::parse_documents::<Value>(&yaml).unwrap() {
            testbed::create_dynamic(&client, &namespace, &document)
                .await
                .unwrap_or_else(|e| panic!("{} was rejected: {e:#}", path.display()));
        }
    }
    let api = Api::<EventDestination>::namespaced(client.clone(), &namespace);
    for destination in api.list(&Default::default()).await.unwrap() {
        let spec = &destination.spec;
        assert_eq!(spec.format, ngrok_events_operator::crd::Format::Json);
        let auth = serde_json::to_value(&spec.target).unwrap();
        let auth = auth
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .get("auth")
            .cloned();
        let auth_kind = auth.and_then(|a| a.as_object().unwrap().keys().next().cloned());
        targets_and_auth.push(format!(
            "{}{}",
            spec.target.kind(),
            auth_kind.map(|a| format!("/{a}")).unwrap_or_default()
        ));
    }
    targets_and_auth.sort();
    assert_eq!(
        targets_and_auth,
        [
            "azureLogsIngestion",
            "cloudwatchLogs/creds",
            "cloudwatchLogs/role",
            "datadog",
            "firehose/creds",
            "firehose/role",
            "kinesis/creds",
            "kinesis/role"
        ],
        "examples/ should hold one example per target, and role and creds for each AWS target"
    );
    // And a subscription that sends events to some of them.
    let subscriptions = Api::<EventSubscription>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .unwrap();
    let [subscription] = subscriptions.items.as_slice() else {
        panic!("examples/ should hold one EventSubscription");
    };
    // It leaves the deletion policy to the namespace's and the operator's defaults.
    assert_eq!(subscription.spec.deletion_policy, None);
    for name in subscription.spec.destination_names() {
        api.get(name).await.unwrap_or_else(|e| {
            panic!("the example subscription names {name}, which is not an example: {e}")
        });
    }
    testbed::delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn invalid_subscriptions_are_rejected_naming_the_field() {
    let valid = json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventSubscription",
        "metadata": {"name": "valid"},
        "spec": {
            "sources": [{"type": "http_request_complete.v0"}],
            "destinationRefs": [{"name": "audit"}],
            "destinationIds": []
        }
    });
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no sources",
            with(valid.clone(), "/spec/sources", None),
            "spec.sources",
        ),
        (
            "empty sources",
            with(valid.clone(), "/spec/sources", Some(json!([]))),
            "spec.sources",
        ),
        (
            "source without a version",
            with(
                valid.clone(),
                "/spec/sources/0/type",
                Some(json!("http_request_complete")),
            ),
            "spec.sources.type",
        ),
        (
            "empty source type",
            with(valid.clone(), "/spec/sources/0/type", Some(json!(""))),
            "spec.sources.type",
        ),
        (
            "a source twice",
            with(
                valid.clone(),
                "/spec/sources",
                Some(json!([{"type": "ip_policy_created.v0"}, {"type": "ip_policy_created.v0"}])),
            ),
            "spec.sources[1]",
        ),
        (
            "no destination",
            with(valid.clone(), "/spec/destinationRefs", None),
            "spec",
        ),
        (
            "no destination, both lists empty",
            with(valid.clone(), "/spec/destinationRefs", Some(json!([]))),
            "spec",
        ),
        (
            "a destination id that is not one",
            with(
                valid.clone(),
                "/spec/destinationIds",
                Some(json!(["esb_123"])),
            ),
            "spec.destinationIds",
        ),
        (
            "a destination ref that is not a name",
            with(
                valid.clone(),
                "/spec/destinationRefs/0/name",
                Some(json!("Audit Log")),
            ),
            "spec.destinationRefs.name",
        ),
        (
            "description over 255 characters",
            with(
                valid.clone(),
                "/spec/description",
                Some(json!("é".repeat(256))),
            ),
            "spec.description",
        ),
        (
            "an empty source field",
            with(valid.clone(), "/spec/sources/0/fields", Some(json!([""]))),
            "spec.sources.fields",
        ),
        (
            "unknown deletion policy",
            with(valid.clone(), "/spec/deletionPolicy", Some(json!("Orphan"))),
            "spec.deletionPolicy",
        ),
    ];
    let (client, namespace) = cluster_with_namespace("crd-invalid-sub").await.unwrap();
    testbed::create_dynamic(&client, &namespace, &valid)
        .await
        .expect("the base object is valid");
    // Raw ids alone are enough.
    let ids_only = with(
        with(valid.clone(), "/spec/destinationRefs", None),
        "/spec/destinationIds",
        Some(json!(["ed_2Dq0fN8lQmLq5pNn3tUwL9mZk1A"])),
    );
    testbed::create_dynamic(
        &client,
        &namespace,
        &with(ids_only, "/metadata/name", Some(json!("ids-only"))),
    )
    .await
    .expect("destinationIds alone are valid");
    // ngrok counts a subscription's limits in characters: 255 two-byte characters (510 bytes)
    // and 4096 three-byte ones pass, as do source fields.
    let at_limits = with(
        with(
            with(
                valid.clone(),
                "/spec/description",
                Some(json!("é".repeat(255))),
            ),
            "/spec/metadata",
            Some(json!("€".repeat(4096))),
        ),
        "/spec/sources/0/fields",
        Some(json!(["conn.client_ip", "http.request.method"])),
    );
    testbed::create_dynamic(
        &client,
        &namespace,
        &with(at_limits, "/metadata/name", Some(json!("at-limits"))),
    )
    .await
    .expect("limits in characters, multi-byte text at the limit is valid");
    let failures = rejections(&client, &namespace, cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let stored = Api::<EventSubscription>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 3);
    testbed::delete_namespace(&client, &namespace).await;
}

/// Creates each case and describes every one that was not rejected with a 422 naming its field.
async fn rejections(
    client: &kube::Client,
    namespace: &str,
    cases: Vec<(&str, Value, &str)>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (label, object, field)) in cases.into_iter().enumerate() {
        let object = with(
            object,
            "/metadata/name",
            Some(json!(format!("invalid-{i}"))),
        );
        match testbed::create_dynamic(client, namespace, &object).await {
            Ok(_) => failures.push(format!("{label}: accepted")),
            Err(e) => match e.downcast_ref::<kube::Error>() {
                Some(kube::Error::Api(status))
                    if status.code == 422 && status.message.contains(field) => {}
                _ => failures.push(format!(
                    "{label}: expected a 422 naming {field}, got: {e:#}"
                )),
            },
        }
    }
    failures
}

/// A valid object each invalid case starts from.
fn valid() -> Value {
    json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventDestination",
        "metadata": {"name": "x"},
        "spec": {
            "description": "ok",
            "metadata": "{}",
            "target": {"kinesis": {
                "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
                "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/r"}}
            }}
        }
    })
}

fn azure() -> Value {
    json!({
        "tenantId": "t", "clientId": "c", "clientSecretRef": {"name": "az", "key": "secret"},
        "logsIngestionUri": "https://x.ingest.monitor.azure.com",
        "dataCollectionRuleId": "dcr-1", "dataCollectionStreamName": "Custom-X"
    })
}

/// Replaces (or with `None`, removes) the value at a JSON pointer.
fn with(mut object: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match value {
        Some(v) => parent[key] = v,
        None => {
            parent.as_object_mut().unwrap().remove(key);
        }
    }
    object
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    let kinesis = "/spec/target/kinesis";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no target",
            with(valid(), "/spec/target", None),
            "spec.target",
        ),
        (
            "empty target",
            with(valid(), "/spec/target", Some(json!({}))),
            "spec.target",
        ),
        (
            "two targets",
            with(
                valid(),
                "/spec/target/datadog",
                Some(json!({"apiKeyRef": {"name": "dd", "key": "k"}})),
            ),
            "spec.target",
        ),
        (
            "role and creds",
            with(
                valid(),
                &format!("{kinesis}/auth/creds"),
                Some(creds_refs("aws")),
            ),
            "spec.target.kinesis.auth",
        ),
        (
            "neither role nor creds",
            with(valid(), &format!("{kinesis}/auth"), Some(json!({}))),
            "spec.target.kinesis.auth",
        ),
        (
            "no auth",
            with(valid(), &format!("{kinesis}/auth"), None),
            "spec.target.kinesis.auth",
        ),
        (
            "description of 256 bytes",
            with(valid(), "/spec/description", Some(json!("d".repeat(256)))),
            "spec.description",
        ),
        (
            "metadata of 4097 bytes",
            with(valid(), "/spec/metadata", Some(json!("m".repeat(4097)))),
            "spec.metadata",
        ),
        (
            "format xml",
            with(valid(), "/spec/format", Some(json!("xml"))),
            "spec.format",
        ),
        (
            "deletionPolicy Maybe",
            with(valid(), "/spec/deletionPolicy", Some(json!("Maybe"))),
            "spec.deletionPolicy",
        ),
        (
            "kinesis without streamArn",
            with(valid(), &format!("{kinesis}/streamArn"), None),
            "spec.target.kinesis.streamArn",
        ),
        (
            "empty streamArn",
            with(valid(), &format!("{kinesis}/streamArn"), Some(json!(""))),
            "spec.target.kinesis.streamArn",
        ),
        (
            "streamArn not an ARN",
            with(
                valid(),
                &format!("{kinesis}/streamArn"),
                Some(json!("mystream")),
            ),
            "spec.target.kinesis.streamArn",
        ),
        (
            "role without roleArn",
            with(valid(), &format!("{kinesis}/auth/role"), Some(json!({}))),
            "spec.target.kinesis.auth.role.roleArn",
        ),
        (
            "empty roleArn",
            with(
                valid(),
                &format!("{kinesis}/auth/role/roleArn"),
                Some(json!("")),
            ),
            "spec.target.kinesis.auth.role.roleArn",
        ),
        (
            "firehose without deliveryStreamArn",
            with(
                valid(),
                "/spec/target",
                Some(json!({"firehose": {"auth": {"role": {"roleArn": "arn:aws:iam::1:role/r"}}}})),
            ),
            "spec.target.firehose.deliveryStreamArn",
        ),
        (
            "cloudwatchLogs without logGroupArn",
            with(
                valid(),
                "/spec/target",
                Some(
                    json!({"cloudwatchLogs": {"auth": {"role": {"roleArn": "arn:aws:iam::1:role/r"}}}}),
                ),
            ),
            "spec.target.cloudwatchLogs.logGroupArn",
        ),
        (
            "creds without secretAccessKeyRef",
            with(
                valid(),
                &format!("{kinesis}/auth"),
                Some(json!({"creds": {"accessKeyIdRef": {"name": "aws", "key": "id"}}})),
            ),
            "spec.target.kinesis.auth.creds.secretAccessKeyRef",
        ),
        (
            "datadog without apiKeyRef",
            with(
                valid(),
                "/spec/target",
                Some(json!({"datadog": {"ddsite": "datadoghq.com"}})),
            ),
            "spec.target.datadog.apiKeyRef",
        ),
        (
            "ref without key",
            with(
                valid(),
                "/spec/target",
                Some(json!({"datadog": {"apiKeyRef": {"name": "dd"}}})),
            ),
            "spec.target.datadog.apiKeyRef.key",
        ),
        (
            "ref with empty name",
            with(
                valid(),
                "/spec/apiKeyRef",
                Some(json!({"name": "", "key": "k"})),
            ),
            "spec.apiKeyRef.name",
        ),
        (
            "ref to an impossible Secret name",
            with(
                valid(),
                "/spec/apiKeyRef",
                Some(json!({"name": "Not_A_Name", "key": "k"})),
            ),
            "spec.apiKeyRef.name",
        ),
        (
            "azure without dataCollectionRuleId",
            with(
                with(
                    valid(),
                    "/spec/target",
                    Some(json!({"azureLogsIngestion": azure()})),
                ),
                "/spec/target/azureLogsIngestion/dataCollectionRuleId",
                None,
            ),
            "spec.target.azureLogsIngestion.dataCollectionRuleId",
        ),
        (
            "azure with empty tenantId",
            with(
                with(
                    valid(),
                    "/spec/target",
                    Some(json!({"azureLogsIngestion": azure()})),
                ),
                "/spec/target/azureLogsIngestion/tenantId",
                Some(json!("")),
            ),
            "spec.target.azureLogsIngestion.tenantId",
        ),
    ];
    assert!(cases.len() >= 15);

    let (client, namespace) = cluster_with_namespace("crd-invalid").await.unwrap();
    // The base object is valid: every rejection below is the mutation's doing.
    testbed::create_dynamic(&client, &namespace, &valid())
        .await
        .expect("the base object is valid");
    let failures = rejections(&client, &namespace, cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing invalid was stored.
    let stored = Api::<EventDestination>::namespaced(client.clone(), &namespace)
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(stored.items.len(), 1);
    testbed::delete_namespace(&client, &namespace).await;
}
