//! The `EventDestination` resource as ngrok's request, the difference from what ngrok has, and
//! the inverse for `import`. Everything here is re-exported by [`crate::desired`].

use ngrok_api::types::{
    AwsAuth as WireAwsAuth, AwsCredentials, AwsRole, EventDestination as Observed,
    EventDestinationCreate as Desired, EventDestinationUpdate, EventTarget,
    EventTargetAzureLogsIngestion, EventTargetCloudwatchLogs, EventTargetDatadog,
    EventTargetFirehose, EventTargetKinesis,
};

use super::{check_bytes, hash};
use crate::crd::{self, AwsAuth, EventDestinationSpec, Target};
use crate::error::Result;
use crate::secrets::SecretValues;

#[cfg(test)]
mod tests;

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
