//! Desired state and difference: pure functions of the spec and the secret values.
//!
//! This is the one place where a field of the `EventDestination` resource becomes a field of
//! ngrok's API request, and where an observed destination is compared with the desired one;
//! [`subscription`] does the same for `EventSubscription`.

pub mod subscription;

use ngrok_api::types::{
    AwsAuth as WireAwsAuth, AwsCredentials, AwsRole, EventDestination as Observed,
    EventDestinationCreate as Desired, EventDestinationUpdate, EventTarget,
    EventTargetAzureLogsIngestion, EventTargetCloudwatchLogs, EventTargetDatadog,
    EventTargetFirehose, EventTargetKinesis,
};
use sha2::{Digest, Sha256};

use crate::crd::{self, AwsAuth, EventDestinationSpec, Target};
use crate::error::{Error, Result};
use crate::secrets::SecretValues;

/// The create request for a spec, with its secrets resolved.
///
/// Fails when the spec breaks a limit of ngrok's that the CRD schema cannot express exactly
/// (byte lengths: `maxLength` counts characters).
pub fn destination(spec: &EventDestinationSpec, secrets: &SecretValues) -> Result<Desired> {
    check_bytes(
        "description",
        spec.description.as_deref(),
        crd::MAX_DESCRIPTION_BYTES,
    )?;
    check_bytes(
        "metadata",
        spec.metadata.as_deref(),
        crd::MAX_METADATA_BYTES,
    )?;
    Ok(Desired {
        description: spec.description.clone(),
        metadata: spec.metadata.clone(),
        format: match spec.format {
            crd::Format::Json => ngrok_api::types::FORMAT_JSON.to_owned(),
        },
        target: target(&spec.target, secrets)?,
    })
}

fn target(target: &Target, secrets: &SecretValues) -> Result<EventTarget> {
    Ok(match target {
        Target::Kinesis(t) => EventTarget::Kinesis(EventTargetKinesis {
            stream_arn: t.stream_arn.clone(),
            auth: aws_auth(&t.auth, secrets)?,
        }),
        Target::Firehose(t) => EventTarget::Firehose(EventTargetFirehose {
            delivery_stream_arn: t.delivery_stream_arn.clone(),
            auth: aws_auth(&t.auth, secrets)?,
        }),
        Target::CloudwatchLogs(t) => EventTarget::CloudwatchLogs(EventTargetCloudwatchLogs {
            log_group_arn: t.log_group_arn.clone(),
            auth: aws_auth(&t.auth, secrets)?,
        }),
        Target::Datadog(t) => EventTarget::Datadog(EventTargetDatadog {
            api_key: Some(secrets.get(&t.api_key_ref)?.clone()),
            ddsite: t.ddsite.clone(),
            ddtags: t.ddtags.clone(),
            service: t.service.clone(),
        }),
        Target::AzureLogsIngestion(t) => {
            EventTarget::AzureLogsIngestion(EventTargetAzureLogsIngestion {
                tenant_id: t.tenant_id.clone(),
                client_id: t.client_id.clone(),
                client_secret: Some(secrets.get(&t.client_secret_ref)?.clone()),
                logs_ingestion_uri: t.logs_ingestion_uri.clone(),
                data_collection_rule_id: t.data_collection_rule_id.clone(),
                data_collection_stream_name: t.data_collection_stream_name.clone(),
            })
        }
    })
}

fn aws_auth(auth: &AwsAuth, secrets: &SecretValues) -> Result<WireAwsAuth> {
    Ok(match auth {
        AwsAuth::Role(role) => WireAwsAuth::Role(AwsRole {
            role_arn: role.role_arn.clone(),
        }),
        AwsAuth::Creds(creds) => WireAwsAuth::Creds(AwsCredentials {
            // The access key id is not secret (ngrok shows it back), but it lives in the same
            // Secret as its partner by convention, so it is read from there.
            aws_access_key_id: secrets.get(&creds.access_key_id_ref)?.expose().to_owned(),
            aws_secret_access_key: Some(secrets.get(&creds.secret_access_key_ref)?.clone()),
        }),
    })
}

/// A subscription's limits are in characters (ngrok's spec), which the CRD's `maxLength`
/// already enforces; checked again here so that a resource stored before that schema, or under
/// a server that skipped it, fails with a clear message before any call to ngrok.
fn check_chars(field: &'static str, value: Option<&str>, max: usize) -> Result<()> {
    match value.map(|v| v.chars().count()) {
        Some(chars) if chars > max => Err(Error::InvalidSpec {
            field,
            problem: format!("is {chars} characters long; ngrok allows at most {max} characters"),
        }),
        _ => Ok(()),
    }
}

fn check_bytes(field: &'static str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        Some(v) if v.len() > max => Err(Error::InvalidSpec {
            field,
            problem: format!(
                "is {} bytes long; ngrok allows at most {max} bytes",
                v.len()
            ),
        }),
        _ => Ok(()),
    }
}

/// What ngrok shows of a destination, normalised so that desired and observed compare equal
/// exactly when nothing needs to change: no secrets (ngrok withholds them), and unset and empty
/// strings alike (ngrok may answer either for a field that was never set).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct Visible {
    description: String,
    metadata: String,
    format: String,
    target: EventTarget,
}

impl Visible {
    fn of_desired(desired: &Desired) -> Self {
        Self {
            description: desired.description.clone().unwrap_or_default(),
            metadata: desired.metadata.clone().unwrap_or_default(),
            format: comparable_format(&desired.format),
            target: visible_target(&desired.target),
        }
    }

    fn of_observed(observed: &Observed) -> Self {
        Self {
            description: observed.description.clone(),
            metadata: observed.metadata.clone(),
            format: comparable_format(&observed.format),
            target: visible_target(&observed.target),
        }
    }
}

/// ngrok accepts the format in any case, or empty (its SDKs' default), and reads it back as
/// written: a destination made by an SDK or the dashboard (`JSON`, `""`) is the same as the
/// operator's `json`, so adopting or importing it never PATCHes the format.
fn comparable_format(format: &str) -> String {
    if format.is_empty() {
        ngrok_api::types::FORMAT_JSON.to_owned()
    } else {
        format.to_ascii_lowercase()
    }
}

fn visible_target(target: &EventTarget) -> EventTarget {
    let mut target = target.without_secrets();
    if let EventTarget::Datadog(datadog) = &mut target {
        for field in [
            &mut datadog.ddsite,
            &mut datadog.ddtags,
            &mut datadog.service,
        ] {
            if field.as_deref() == Some("") {
                *field = None;
            }
        }
    }
    target
}

/// The update that makes `observed` match `desired`: only the fields that differ, and the
/// whole target (secrets included) when it differs or when the secrets must be sent again.
pub fn changes(
    desired: &Desired,
    observed: &Observed,
    resend_secrets: bool,
) -> EventDestinationUpdate {
    let (want, have) = (Visible::of_desired(desired), Visible::of_observed(observed));
    EventDestinationUpdate {
        // An unset description or metadata clears a value set in ngrok: the resource is the truth.
        description: (want.description != have.description).then(|| want.description.clone()),
        metadata: (want.metadata != have.metadata).then(|| want.metadata.clone()),
        format: (want.format != have.format).then(|| want.format.clone()),
        target: (want.target != have.target || resend_secrets).then(|| desired.target.clone()),
    }
}

/// What a managing reconcile would change in `observed` to match `desired`, field by field
/// (observe mode), without secret values: the fields [`changes`] would send, plus each secret
/// of the target unless `secrets` says the values ngrok holds are the current ones.
pub fn drift(
    desired: &Desired,
    observed: &Observed,
    secrets: crate::drift::SecretState,
) -> Vec<crate::drift::FieldDifference> {
    fn value(v: &impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    // Only the paths of the secrets are kept, never their values.
    let secret_paths = crate::drift::secret_paths(
        &serde_json::json!({"target": value(&desired.target)}),
        &serde_json::json!({"target": value(&desired.target.without_secrets())}),
    );
    let mut report = crate::drift::differences(
        &value(&Visible::of_desired(desired)),
        &value(&Visible::of_observed(observed)),
        &secret_paths,
        secrets,
    );
    // ngrok shows the access key id, but the spec's comes from a Secret: a difference is
    // reported without either value (the status is readable by more people than the Secret).
    for difference in &mut report {
        if difference.path.ends_with(SECRET_SOURCED_VISIBLE_FIELD) {
            difference.wanted = None;
            difference.actual = None;
            difference.secret = Some("differs".into());
        }
    }
    report
}

/// The one field ngrok shows back whose value the spec reads from a Secret.
const SECRET_SOURCED_VISIBLE_FIELD: &str = ".auth.creds.aws_access_key_id";

/// Hash of what a listing shows of a destination: how a destination whose create response was
/// lost is recognised in a listing. Desired and observed fingerprints are equal exactly when
/// [`changes`] (without resending secrets) would be empty.
pub fn fingerprint(desired: &Desired) -> String {
    hash(&Visible::of_desired(desired))
}

/// [`fingerprint`] of a destination as ngrok shows it.
pub fn observed_fingerprint(observed: &Observed) -> String {
    hash(&Visible::of_observed(observed))
}

fn hash(visible: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(visible).expect("plain data always serializes");
    hex::encode(&Sha256::digest(&json)[..16])
}

/// The spec that describes an existing destination, for `import`: the inverse of
/// [`destination`]. ngrok never returns secret values, so every secret becomes a ref to a key
/// of one Secret, `secret_name`, which the user creates; the keys are listed in the result.
pub fn spec_from_remote(
    remote: &Observed,
    secret_name: &str,
) -> (EventDestinationSpec, Vec<ImportedSecretKey>) {
    let mut keys = Vec::new();
    let mut secret_ref = |key: &str, hint: Option<String>| {
        keys.push(ImportedSecretKey {
            key: key.to_string(),
            known_value: hint,
        });
        crd::SecretKeyRef {
            name: secret_name.to_string(),
            key: key.to_string(),
        }
    };
    let mut aws_auth = |auth: &WireAwsAuth| match auth {
        WireAwsAuth::Role(role) => AwsAuth::Role(crd::AwsRole {
            role_arn: role.role_arn.clone(),
        }),
        WireAwsAuth::Creds(creds) => AwsAuth::Creds(crd::AwsCreds {
            // The access key id is not secret and ngrok shows it: the user can copy it.
            access_key_id_ref: secret_ref(
                "aws-access-key-id",
                Some(creds.aws_access_key_id.clone()),
            ),
            secret_access_key_ref: secret_ref("aws-secret-access-key", None),
        }),
    };
    let target = match &remote.target {
        EventTarget::Kinesis(t) => Target::Kinesis(crd::KinesisTarget {
            stream_arn: t.stream_arn.clone(),
            auth: aws_auth(&t.auth),
        }),
        EventTarget::Firehose(t) => Target::Firehose(crd::FirehoseTarget {
            delivery_stream_arn: t.delivery_stream_arn.clone(),
            auth: aws_auth(&t.auth),
        }),
        EventTarget::CloudwatchLogs(t) => Target::CloudwatchLogs(crd::CloudwatchLogsTarget {
            log_group_arn: t.log_group_arn.clone(),
            auth: aws_auth(&t.auth),
        }),
        EventTarget::Datadog(t) => {
            let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
            Target::Datadog(crd::DatadogTarget {
                api_key_ref: secret_ref("datadog-api-key", None),
                ddsite: non_empty(&t.ddsite),
                ddtags: non_empty(&t.ddtags),
                service: non_empty(&t.service),
            })
        }
        EventTarget::AzureLogsIngestion(t) => {
            Target::AzureLogsIngestion(crd::AzureLogsIngestionTarget {
                tenant_id: t.tenant_id.clone(),
                client_id: t.client_id.clone(),
                client_secret_ref: secret_ref("azure-client-secret", None),
                logs_ingestion_uri: t.logs_ingestion_uri.clone(),
                data_collection_rule_id: t.data_collection_rule_id.clone(),
                data_collection_stream_name: t.data_collection_stream_name.clone(),
            })
        }
    };
    let spec = EventDestinationSpec {
        description: Some(remote.description.clone()).filter(|d| !d.is_empty()),
        metadata: Some(remote.metadata.clone()).filter(|m| !m.is_empty()),
        format: crd::Format::Json,
        deletion_policy: None,
        api_key_ref: None,
        target,
    };
    (spec, keys)
}

/// A key the user must put into the Secret an imported resource references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSecretKey {
    pub key: String,
    /// A value ngrok shows (the AWS access key id); secret values are never known.
    pub known_value: Option<String>,
}

#[cfg(test)]
mod tests {
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
            let original =
                spec(json!({"description": "d", "metadata": "not json", "target": target}));
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
}
