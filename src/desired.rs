//! Desired state and difference: pure functions of the spec and the secret values.
//!
//! This is the one place where a field of a resource becomes a field of ngrok's API request, and
//! where an observed object is compared with the desired one: `destination` does it for
//! `EventDestination` (re-exported here, so its functions are `desired::destination`,
//! `desired::changes`, ...), [`subscription`] for `EventSubscription`. Only what both share
//! stays in this file: the checks of ngrok's length limits, and the hash behind their
//! fingerprints.

mod destination;
pub mod subscription;

pub use destination::{
    ImportedSecretKey, changes, destination, drift, fingerprint, observed_fingerprint,
    spec_from_remote,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

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

/// The fingerprint of a normalised view (a destination's or a subscription's): what a listing
/// shows, hashed. Pending creates are recorded by it, so its input must not change.
fn hash(visible: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(visible).expect("plain data always serializes");
    hex::encode(&Sha256::digest(&json)[..16])
}
