//! The JSON of AWS access-key credentials, for the targets that take them (Kinesis, Firehose,
//! CloudWatch Logs): as an `EventDestination` spells them, with references to a Secret, and as
//! ngrok receives them once resolved.

use serde_json::{Value, json};

/// The `auth` of an AWS target that reads its access keys from keys `id` and `secret` of the
/// Secret named `secret`: `{"creds": {"accessKeyIdRef": ..., "secretAccessKeyRef": ...}}`.
pub fn creds(secret: &str) -> Value {
    json!({ "creds": creds_refs(secret) })
}

/// What [`creds`] holds under `creds`: the two references alone.
pub fn creds_refs(secret: &str) -> Value {
    json!({
        "accessKeyIdRef": {"name": secret, "key": "id"},
        "secretAccessKeyRef": {"name": secret, "key": "secret"},
    })
}

/// The `auth` that ngrok receives for [`creds`] once the Secret's values are resolved.
pub fn wire_creds(access_key_id: &str, secret_access_key: &str) -> Value {
    json!({"creds": {
        "aws_access_key_id": access_key_id,
        "aws_secret_access_key": secret_access_key,
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            creds("aws"),
            json!({"creds": {"accessKeyIdRef": {"name": "aws", "key": "id"}, "secretAccessKeyRef": {"name": "aws", "key": "secret"}}})
        );
        assert_eq!(creds("aws")["creds"], creds_refs("aws"));
        assert_eq!(
            wire_creds("AKIA1", "s"),
            json!({"creds": {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s"}})
        );
    }
}
