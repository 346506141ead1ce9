//! Reading the Secret keys a resource references, at reconcile time.
//!
//! Values are fetched with a GET per Secret when needed and never cached: the controller only
//! watches Secrets' metadata (to know when to reconcile), so no secret data sits in its memory
//! between reconciles.
//!
//! Every value has a bound ([`Shape`]), checked on the Secret's bytes before anything is copied
//! out of it: a tenant's Secret cannot make the operator hold, hash or send more than a few KiB
//! per value. Each Secret fetched is dropped once its values are taken.
//!
//! Secrets are opt-in (unless the operator runs with `--require-credentials-label=false`): a
//! resource may only read a Secret labelled [`CREDENTIALS_LABEL`]`=true`. Without that, the
//! right to create an EventDestination would be the right to make the operator read any key of
//! any Secret of the namespace (service-account tokens included) and send it to ngrok.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use ngrok_api::Secret;

use crate::crd::{AwsAuth, SecretKeyRef, Target};
use crate::error::{Error, Result};

pub use crate::crd::CREDENTIALS_LABEL;

/// The label selector of the Secrets resources may use.
pub fn credentials_selector() -> String {
    format!("{CREDENTIALS_LABEL}=true")
}

/// The longest ngrok API key read from a Secret (ngrok's keys are about 50 characters).
pub const MAX_API_KEY_BYTES: usize = 512;
/// The shortest and longest AWS access key id (AWS's own bounds), letters and digits only.
pub const AWS_ACCESS_KEY_ID_BYTES: std::ops::RangeInclusive<usize> = 16..=128;
/// The longest other credential: an AWS secret access key, a Datadog API key, an Azure client
/// secret (each well under 100 characters).
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

/// What a Secret value is, and so its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An ngrok API key (`spec.apiKeyRef`): at most [`MAX_API_KEY_BYTES`].
    NgrokApiKey,
    /// An AWS access key id: [`AWS_ACCESS_KEY_ID_BYTES`] letters and digits. Not a secret
    /// (ngrok shows it back in every listing), which is why its shape matters: it is stored in
    /// the account and read back by every resource of it.
    AwsAccessKeyId,
    /// Any other credential: at most [`MAX_CREDENTIAL_BYTES`].
    Credential,
}

impl Shape {
    /// Why `bytes` cannot be this value, if it cannot: the bound, never the value.
    fn problem(self, bytes: &[u8]) -> Option<String> {
        let len = bytes.len();
        let over = |max: usize, what: &str| {
            (len > max).then(|| format!("is {len} bytes, over the bound of {max} bytes for {what}"))
        };
        match self {
            Shape::NgrokApiKey => over(MAX_API_KEY_BYTES, "an ngrok API key"),
            Shape::Credential => over(MAX_CREDENTIAL_BYTES, "a credential"),
            Shape::AwsAccessKeyId => {
                let (min, max) = (
                    *AWS_ACCESS_KEY_ID_BYTES.start(),
                    *AWS_ACCESS_KEY_ID_BYTES.end(),
                );
                let alphanumeric = bytes.iter().all(u8::is_ascii_alphanumeric);
                (!AWS_ACCESS_KEY_ID_BYTES.contains(&len) || !alphanumeric).then(|| {
                    format!(
                        "is not an AWS access key id ({len} bytes{}): it must be {min} to {max} letters and digits",
                        if alphanumeric { "" } else { ", not all letters and digits" }
                    )
                })
            }
        }
    }
}

/// Every Secret key a target reads, with its shape.
pub fn target_refs(target: &Target) -> Vec<(&SecretKeyRef, Shape)> {
    match target {
        Target::Kinesis(crate::crd::KinesisTarget { auth, .. })
        | Target::Firehose(crate::crd::FirehoseTarget { auth, .. })
        | Target::CloudwatchLogs(crate::crd::CloudwatchLogsTarget { auth, .. }) => match auth {
            AwsAuth::Role(_) => vec![],
            AwsAuth::Creds(creds) => vec![
                (&creds.access_key_id_ref, Shape::AwsAccessKeyId),
                (&creds.secret_access_key_ref, Shape::Credential),
            ],
        },
        Target::Datadog(datadog) => vec![(&datadog.api_key_ref, Shape::Credential)],
        Target::AzureLogsIngestion(azure) => vec![(&azure.client_secret_ref, Shape::Credential)],
    }
}

/// The values of a resource's Secret refs.
#[derive(Debug, Default, Clone)]
pub struct SecretValues {
    values: BTreeMap<SecretKeyRef, Secret>,
}

impl SecretValues {
    /// Values for tests and for callers that already hold them.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (SecretKeyRef, Secret)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
        }
    }

    /// True when the resource references no Secret values (a role-authenticated AWS target).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of a ref that [`resolve`] was asked for.
    pub fn get(&self, reference: &SecretKeyRef) -> Result<&Secret> {
        self.values
            .get(reference)
            .ok_or_else(|| Error::SecretKeyNotFound {
                name: reference.name.clone(),
                key: reference.key.clone(),
            })
    }

    /// HMAC-SHA256 of every value, keyed with the account's API key, hex encoded. It changes
    /// when any value changes; without the API key it does not help to guess a value.
    pub fn keyed_hash(&self, api_key: &Secret) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(api_key.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        for (reference, value) in &self.values {
            // Length-prefixed, so that no two different sets of values hash alike.
            for part in [
                reference.name.as_str(),
                reference.key.as_str(),
                value.expose(),
            ] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part.as_bytes());
            }
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Reads every ref from Secrets in the resource's namespace (`api` is namespaced), each value
/// checked against its [`Shape`]. With `require_label`, a Secret without
/// [`CREDENTIALS_LABEL`]`=true` is refused before any of its values is looked at.
pub async fn resolve(
    api: &Api<KubeSecret>,
    refs: &[(&SecretKeyRef, Shape)],
    require_label: bool,
) -> Result<SecretValues> {
    let mut values = BTreeMap::new();
    let mut read = HashSet::new();
    for name in refs.iter().map(|(r, _)| r.name.as_str()) {
        if !read.insert(name) {
            continue;
        }
        // One Secret at a time, dropped once its values are taken.
        let secret = api
            .get_opt(name)
            .await?
            .ok_or_else(|| Error::SecretNotFound {
                name: name.to_string(),
            })?;
        if require_label && !is_labelled(&secret) {
            return Err(Error::SecretNotLabeled {
                name: name.to_string(),
                namespace: api.namespace().unwrap_or_default().to_string(),
            });
        }
        for (reference, shape) in refs.iter().filter(|(r, _)| r.name == name) {
            let value = value_of(&secret, reference, *shape)?;
            values.insert((*reference).clone(), value);
        }
    }
    Ok(SecretValues { values })
}

/// Whether a Secret opted in to being read by resources.
fn is_labelled(secret: &KubeSecret) -> bool {
    secret.labels().get(CREDENTIALS_LABEL).map(String::as_str) == Some("true")
}

/// The value of `reference`, checked against its shape before it is copied out of `secret`.
fn value_of(secret: &KubeSecret, reference: &SecretKeyRef, shape: Shape) -> Result<Secret> {
    let invalid = |problem| Error::SecretValueInvalid {
        name: reference.name.clone(),
        key: reference.key.clone(),
        problem,
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .ok_or_else(|| Error::SecretKeyNotFound {
            name: reference.name.clone(),
            key: reference.key.clone(),
        })?;
    if let Some(problem) = shape.problem(&bytes.0) {
        return Err(Error::InvalidSecret {
            name: reference.name.clone(),
            key: reference.key.clone(),
            problem,
        });
    }
    let value = std::str::from_utf8(&bytes.0).map_err(|_| invalid("is not valid UTF-8"))?;
    if value.is_empty() {
        return Err(invalid("is empty"));
    }
    Ok(Secret::new(value))
}

/// An ngrok API key read from a Secret or a file: surrounding whitespace (the trailing newline
/// of `kubectl create secret --from-file` or `echo`) is never part of a key.
pub fn api_key_from(value: &Secret) -> Secret {
    Secret::new(value.expose().trim())
}

/// Secret (namespace, name) → the resources that reference it. Filled in by reconciles, so a
/// Secret event costs a lookup rather than a scan of every resource.
pub struct SecretIndex<K: Resource<DynamicType = ()>> {
    by_secret: Mutex<HashMap<SecretName, HashSet<ObjectRef<K>>>>,
    by_resource: Mutex<HashMap<ObjectRef<K>, Vec<SecretName>>>,
}

impl<K: Resource<DynamicType = ()>> Default for SecretIndex<K> {
    fn default() -> Self {
        Self {
            by_secret: Mutex::default(),
            by_resource: Mutex::default(),
        }
    }
}

/// A Secret's namespace and name.
type SecretName = (String, String);

impl<K: Resource<DynamicType = ()>> SecretIndex<K> {
    /// Records the Secrets a resource references now (replacing what it referenced before).
    pub fn record<'a>(&self, resource: &K, refs: impl IntoIterator<Item = &'a SecretKeyRef>) {
        let namespace = resource.namespace().unwrap_or_default();
        let object_ref = ObjectRef::from_obj(resource);
        let secrets: Vec<SecretName> = refs
            .into_iter()
            .map(|r| (namespace.clone(), r.name.clone()))
            .collect();
        self.forget(&object_ref);
        let mut by_secret = self.by_secret.lock().expect("index lock");
        for secret in &secrets {
            by_secret
                .entry(secret.clone())
                .or_default()
                .insert(object_ref.clone());
        }
        self.by_resource
            .lock()
            .expect("index lock")
            .insert(object_ref, secrets);
    }

    /// Forgets a resource.
    pub fn forget(&self, object_ref: &ObjectRef<K>) {
        let Some(secrets) = self
            .by_resource
            .lock()
            .expect("index lock")
            .remove(object_ref)
        else {
            return;
        };
        let mut by_secret = self.by_secret.lock().expect("index lock");
        for secret in secrets {
            if let Some(refs) = by_secret.get_mut(&secret) {
                refs.remove(object_ref);
                if refs.is_empty() {
                    by_secret.remove(&secret);
                }
            }
        }
    }

    /// The resources that reference a Secret.
    pub fn referencing(&self, namespace: &str, name: &str) -> Vec<ObjectRef<K>> {
        let by_secret = self.by_secret.lock().expect("index lock");
        by_secret
            .get(&(namespace.to_string(), name.to_string()))
            .map(|refs| refs.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn keyed_hash_changes_with_any_value_and_with_the_key() {
        let values = |v: &str| {
            SecretValues::from_pairs([
                (reference("aws", "id"), Secret::new("AKIA")),
                (reference("aws", "secret"), Secret::new(v)),
            ])
        };
        let key = Secret::new("api-key");
        assert_eq!(values("a").keyed_hash(&key), values("a").keyed_hash(&key));
        assert_ne!(values("a").keyed_hash(&key), values("b").keyed_hash(&key));
        assert_ne!(
            values("a").keyed_hash(&key),
            values("a").keyed_hash(&Secret::new("other-key"))
        );
        assert_eq!(values("a").keyed_hash(&key).len(), 64);
    }

    #[test]
    fn debug_output_never_shows_values() {
        let values =
            SecretValues::from_pairs([(reference("dd", "api-key"), Secret::new("dd-value-123"))]);
        let printed = format!("{values:?} {values:#?}");
        assert!(!printed.contains("dd-value-123"), "{printed}");
        assert!(printed.contains("api-key"));
    }

    #[test]
    fn missing_and_invalid_values_name_secret_and_key() {
        let secret = KubeSecret {
            data: Some(
                [
                    ("empty".to_string(), k8s_openapi::ByteString(vec![])),
                    ("bin".to_string(), k8s_openapi::ByteString(vec![0xff])),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let err = value_of(&secret, &reference("s", "nope"), Shape::Credential).unwrap_err();
        assert_eq!(err.to_string(), r#"Secret "s" has no key "nope""#);
        assert_eq!(err.reason(), "SecretKeyNotFound");
        assert_eq!(
            value_of(&secret, &reference("s", "empty"), Shape::Credential)
                .unwrap_err()
                .to_string(),
            r#"Secret "s" key "empty" is empty"#
        );
        assert_eq!(
            value_of(&secret, &reference("s", "bin"), Shape::Credential)
                .unwrap_err()
                .reason(),
            "SecretValueInvalid"
        );
    }

    /// Each shape's bound, at and past its edge; over it the error names the Secret, the key and
    /// the bound, never the value.
    #[test]
    fn values_are_bounded_by_their_shape() {
        let secret = |value: Vec<u8>| KubeSecret {
            data: Some([("k".to_string(), k8s_openapi::ByteString(value))].into()),
            ..Default::default()
        };
        let check = |shape, value: Vec<u8>| value_of(&secret(value), &reference("s", "k"), shape);
        let rows: Vec<(Shape, Vec<u8>, bool)> = vec![
            (Shape::NgrokApiKey, vec![b'k'; MAX_API_KEY_BYTES], true),
            (Shape::NgrokApiKey, vec![b'k'; MAX_API_KEY_BYTES + 1], false),
            (Shape::NgrokApiKey, vec![b'k'; 1 << 20], false),
            (Shape::Credential, vec![b'c'; MAX_CREDENTIAL_BYTES], true),
            (
                Shape::Credential,
                vec![b'c'; MAX_CREDENTIAL_BYTES + 1],
                false,
            ),
            (
                Shape::AwsAccessKeyId,
                b"AKIAIOSFODNN7EXAMPLE".to_vec(),
                true,
            ),
            (Shape::AwsAccessKeyId, vec![b'A'; 16], true),
            (Shape::AwsAccessKeyId, vec![b'A'; 128], true),
            (Shape::AwsAccessKeyId, vec![b'A'; 15], false),
            (Shape::AwsAccessKeyId, vec![b'A'; 129], false),
            (Shape::AwsAccessKeyId, vec![b'A'; 900_000], false),
            (
                Shape::AwsAccessKeyId,
                b"AKIAIOSFODNN7EXAMPLE\n".to_vec(),
                false,
            ),
            (
                Shape::AwsAccessKeyId,
                b"AKIA-IOSFODNN7EXAMPLE".to_vec(),
                false,
            ),
        ];
        for (shape, value, accepted) in rows {
            let len = value.len();
            let result = check(shape, value);
            assert_eq!(result.is_ok(), accepted, "{shape:?} of {len} bytes");
            if let Err(error) = result {
                assert_eq!(error.reason(), "InvalidSecret");
                assert!(error.is_stalled());
                let message = error.to_string();
                assert!(message.starts_with(r#"Secret "s" key "k" "#), "{message}");
                assert!(message.len() < 200, "{message}");
                assert!(
                    !message.contains("AAAA") && !message.contains("kkkk"),
                    "{message}"
                );
            }
        }
        let message = check(Shape::AwsAccessKeyId, vec![b'A'; 900_000])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("16 to 128 letters and digits"),
            "{message}"
        );
        let message = check(Shape::NgrokApiKey, vec![b'k'; 1 << 20])
            .unwrap_err()
            .to_string();
        assert!(message.contains("bound of 512 bytes"), "{message}");
    }

    #[test]
    fn only_the_label_value_true_opts_a_secret_in() {
        let with = |labels: &[(&str, &str)]| KubeSecret {
            metadata: kube::api::ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(is_labelled(&with(&[(CREDENTIALS_LABEL, "true")])));
        for labels in [
            &[][..],
            &[(CREDENTIALS_LABEL, "false")],
            &[(CREDENTIALS_LABEL, "True")],
            &[(CREDENTIALS_LABEL, "")],
            &[("credentials", "true")],
        ] {
            assert!(!is_labelled(&with(labels)), "{labels:?}");
        }
        assert_eq!(credentials_selector(), "events.ngrok.io/credentials=true");
    }

    #[test]
    fn api_keys_lose_surrounding_whitespace() {
        assert_eq!(api_key_from(&Secret::new("  key\n")).expose(), "key");
    }
}
