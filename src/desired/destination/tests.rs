use ngrok_api::Secret;
use serde_json::json;

use super::*;
use crate::crd::SecretKeyRef;

fn spec(value: serde_json::Value) -> EventDestinationSpec {
    serde_json::from_value(value).unwrap()
}

fn secrets() -> SecretValues {
    let r = |name: &str, key: &str| SecretKeyRef {
        name: name.into(),
        key: key.into(),
    };
    SecretValues::from_pairs([
        (r("aws", "id"), Secret::new("AKIAEXAMPLE")),
        (r("aws", "secret"), Secret::new("aws-secret-value")),
        (r("dd", "key"), Secret::new("dd-secret-value")),
        (r("az", "secret"), Secret::new("azure-secret-value")),
    ])
}

fn creds() -> serde_json::Value {
    json!({"creds": {"accessKeyIdRef": {"name": "aws", "key": "id"}, "secretAccessKeyRef": {"name": "aws", "key": "secret"}}})
}

/// The wire body of each target type, field for field.
#[test]
fn every_target_maps_to_the_wire_body() {
    let cases = [
        (
            json!({"kinesis": {"streamArn": "arn:aws:kinesis:r:1:stream/s", "auth": {"role": {"roleArn": "arn:aws:iam::1:role/r"}}}}),
            json!({"kinesis": {"stream_arn": "arn:aws:kinesis:r:1:stream/s", "auth": {"role": {"role_arn": "arn:aws:iam::1:role/r"}}}}),
        ),
        (
            json!({"firehose": {"deliveryStreamArn": "arn:aws:firehose:r:1:deliverystream/s", "auth": creds()}}),
            json!({"firehose": {"delivery_stream_arn": "arn:aws:firehose:r:1:deliverystream/s",
                "auth": {"creds": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "aws-secret-value"}}}}),
        ),
        (
            json!({"cloudwatchLogs": {"logGroupArn": "arn:aws:logs:r:1:log-group:g", "auth": creds()}}),
            json!({"cloudwatch_logs": {"log_group_arn": "arn:aws:logs:r:1:log-group:g",
                "auth": {"creds": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "aws-secret-value"}}}}),
        ),
        (
            json!({"datadog": {"apiKeyRef": {"name": "dd", "key": "key"}, "ddsite": "datadoghq.eu", "ddtags": "env:dev", "service": "ngrok"}}),
            json!({"datadog": {"api_key": "dd-secret-value", "ddsite": "datadoghq.eu", "ddtags": "env:dev", "service": "ngrok"}}),
        ),
        (
            json!({"datadog": {"apiKeyRef": {"name": "dd", "key": "key"}}}),
            json!({"datadog": {"api_key": "dd-secret-value"}}),
        ),
        (
            json!({"azureLogsIngestion": {"tenantId": "t", "clientId": "c", "clientSecretRef": {"name": "az", "key": "secret"},
                "logsIngestionUri": "https://x", "dataCollectionRuleId": "dcr-1", "dataCollectionStreamName": "Custom-X"}}),
            json!({"azure_logs_ingestion": {"tenant_id": "t", "client_id": "c", "client_secret": "azure-secret-value",
                "logs_ingestion_uri": "https://x", "data_collection_rule_id": "dcr-1", "data_collection_stream_name": "Custom-X"}}),
        ),
    ];
    for (target, wire) in cases {
        let desired = destination(
            &spec(json!({"description": "d", "metadata": "{\"a\":1}", "target": target})),
            &secrets(),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&desired).unwrap(),
            json!({"description": "d", "metadata": "{\"a\":1}", "format": "json", "target": wire})
        );
    }
}

#[test]
fn unset_optional_fields_are_not_sent() {
    let desired = destination(&spec(json!({"target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}})), &secrets()).unwrap();
    let body = serde_json::to_value(&desired).unwrap();
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["format", "target"]
    );
}

#[test]
fn byte_limits_are_checked_in_bytes() {
    // 128 two-byte characters: 128 characters (the schema allows it), 256 bytes (ngrok does not).
    let description = "é".repeat(128);
    let err = destination(&spec(json!({"description": description, "target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}})), &secrets()).unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert_eq!(
        err.to_string(),
        "spec.description is 256 bytes long; ngrok allows at most 255 bytes"
    );
    let metadata = "m".repeat(4097);
    let err = destination(&spec(json!({"metadata": metadata, "target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}})), &secrets()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.metadata is 4097 bytes long")
    );
}

#[test]
fn a_missing_secret_value_names_secret_and_key() {
    let err = destination(
        &spec(json!({"target": {"datadog": {"apiKeyRef": {"name": "other", "key": "k"}}}})),
        &secrets(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "SecretKeyNotFound");
}

fn observed_from(desired: &Desired) -> Observed {
    Observed {
        id: "ed_1".into(),
        uri: "u".into(),
        created_at: "2024-08-02T07:15:39Z".into(),
        metadata: desired.metadata.clone().unwrap_or_default(),
        description: desired.description.clone().unwrap_or_default(),
        format: desired.format.clone(),
        target: desired.target.without_secrets(),
    }
}

#[test]
fn in_sync_means_no_changes_and_equal_fingerprints() {
    for target in [
        json!({"kinesis": {"streamArn": "arn:s", "auth": creds()}}),
        json!({"datadog": {"apiKeyRef": {"name": "dd", "key": "key"}}}),
    ] {
        let desired = destination(&spec(json!({"target": target})), &secrets()).unwrap();
        let observed = observed_from(&desired);
        assert!(changes(&desired, &observed, false).is_empty());
        assert_eq!(fingerprint(&desired), observed_fingerprint(&observed));
    }
}

#[test]
fn a_format_read_back_as_json_or_empty_is_in_sync() {
    let desired = destination(&spec(json!({"target": {"kinesis": {"streamArn": "arn:s", "auth": {"role": {"roleArn": "arn:r"}}}}})), &secrets()).unwrap();
    for format in ["JSON", "", "Json"] {
        let observed = Observed {
            format: format.into(),
            ..observed_from(&desired)
        };
        assert!(changes(&desired, &observed, false).is_empty(), "{format:?}");
        assert_eq!(fingerprint(&desired), observed_fingerprint(&observed));
    }
    let other = Observed {
        format: "xml".into(),
        ..observed_from(&desired)
    };
    assert_eq!(
        changes(&desired, &other, false).format.as_deref(),
        Some("json")
    );
}

#[test]
fn empty_strings_in_ngrok_equal_unset_fields() {
    let desired = destination(
        &spec(json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "key"}}}})),
        &secrets(),
    )
    .unwrap();
    let mut observed = observed_from(&desired);
    if let EventTarget::Datadog(d) = &mut observed.target {
        d.ddsite = Some(String::new());
    }
    assert!(changes(&desired, &observed, false).is_empty());
}

/// Observe mode's report never shows the access key id, the Secret's nor ngrok's.
#[test]
fn drift_of_an_access_key_id_shows_neither_value() {
    let desired = destination(
        &spec(json!({"target": {"kinesis": {"streamArn": "arn:s", "auth": creds()}}})),
        &secrets(),
    )
    .unwrap();
    let mut observed = observed_from(&desired);
    let ngrok_target = serde_json::to_string(&observed.target)
        .unwrap()
        .replace("AKIAEXAMPLE", "AKIAREMOTEKEY");
    observed.target = serde_json::from_str(&ngrok_target).unwrap();
    let report = drift(&desired, &observed, crate::drift::SecretState::Sent);
    assert_eq!(
        report,
        [crate::drift::FieldDifference {
            path: "target.kinesis.auth.creds.aws_access_key_id".into(),
            wanted: None,
            actual: None,
            secret: Some("differs".into()),
        }]
    );
    let text = serde_json::to_string(&report).unwrap();
    assert!(
        !text.contains("AKIAEXAMPLE") && !text.contains("AKIAREMOTEKEY"),
        "{text}"
    );
}

#[test]
fn changes_carry_only_what_differs() {
    let desired = destination(&spec(json!({"description": "new", "target": {"kinesis": {"streamArn": "arn:s", "auth": creds()}}})), &secrets()).unwrap();
    let mut observed = observed_from(&desired);
    observed.description = "old".into();
    observed.metadata = "set in the dashboard".into();
    let update = changes(&desired, &observed, false);
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({"description": "new", "metadata": ""})
    );
    assert_ne!(fingerprint(&desired), observed_fingerprint(&observed));

    // A rotated secret sends the whole target again, and nothing else.
    let update = changes(&desired, &observed_from(&desired), true);
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({"target": {"kinesis": {"stream_arn": "arn:s", "auth": {"creds": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "aws-secret-value"}}}}})
    );
}

#[test]
fn an_imported_spec_maps_back_to_the_same_destination() {
    for target in [
        json!({"kinesis": {"streamArn": "arn:s", "auth": {"creds": {"accessKeyIdRef": {"name": "x-credentials", "key": "aws-access-key-id"}, "secretAccessKeyRef": {"name": "x-credentials", "key": "aws-secret-access-key"}}}}}),
        json!({"firehose": {"deliveryStreamArn": "arn:f", "auth": {"role": {"roleArn": "arn:r"}}}}),
        json!({"datadog": {"apiKeyRef": {"name": "x-credentials", "key": "datadog-api-key"}, "ddsite": "datadoghq.eu"}}),
        json!({"azureLogsIngestion": {"tenantId": "t", "clientId": "c", "clientSecretRef": {"name": "x-credentials", "key": "azure-client-secret"},
            "logsIngestionUri": "https://x", "dataCollectionRuleId": "d", "dataCollectionStreamName": "s"}}),
    ] {
        let original = spec(json!({"description": "d", "metadata": "not json", "target": target}));
        let values = SecretValues::from_pairs(
            original
                .target
                .secret_refs()
                .into_iter()
                .map(|r| (r.clone(), Secret::new("v"))),
        );
        let remote = observed_from(&destination(&original, &values).unwrap());
        let (imported, keys) = spec_from_remote(&remote, "x-credentials");
        assert_eq!(imported, original);
        assert_eq!(keys.len(), original.target.secret_refs().len());
    }
}

#[test]
fn fingerprints_ignore_secret_values() {
    let other_secrets = SecretValues::from_pairs([(
        SecretKeyRef {
            name: "dd".into(),
            key: "key".into(),
        },
        Secret::new("rotated"),
    )]);
    let s = spec(json!({"target": {"datadog": {"apiKeyRef": {"name": "dd", "key": "key"}}}}));
    assert_eq!(
        fingerprint(&destination(&s, &secrets()).unwrap()),
        fingerprint(&destination(&s, &other_secrets).unwrap())
    );
}
