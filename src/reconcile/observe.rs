//! Observe mode (annotation `events.ngrok.io/management: observe`): read the ngrok object the
//! resource names (its `status.id`, else its `adopt-id`) and report in `status.drift` what a
//! managing reconcile would change, without one write to ngrok. What differs is computed by
//! `Managed::drift` (pure, [`crate::drift`]); this module only reads and records.

use super::{Managed, ManagedStatus, Prepared, Reconciliation, Synced, adopt};
use crate::accounts::Account;
use crate::crd::{ADOPT_ID_ANNOTATION, MANAGEMENT_ANNOTATION};
use crate::drift::{FieldDifference, SecretState};
use crate::error::{Error, Result};

/// Reads the ngrok object and records what managing it would change.
pub(super) async fn observe<K: Managed>(
    r: &mut Reconciliation<'_, K>,
    account: &Account,
    prepared: &Prepared<K::Desired>,
    adopt_id: Option<&str>,
    interval: std::time::Duration,
) -> Result<Synced> {
    let remote = match r.status.id().cloned() {
        Some(id) => match K::get(account, &id).await {
            Ok(remote) => Some(remote),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        },
        None => match adopt_id {
            // Records the id (no write to ngrok), so that switching to manage updates this
            // object in place and a subscription can name it.
            Some(adopt_id) => Some(adopt(r, account, adopt_id).await?),
            None => {
                return Err(Error::InvalidAnnotation {
                    annotation: MANAGEMENT_ANNOTATION,
                    problem: format!(
                        "observe needs an ngrok object to observe: set {ADOPT_ID_ANNOTATION} (ngrok-events-operator import --observe does)"
                    ),
                });
            }
        },
    };
    let drift = match &remote {
        Some(remote) => {
            let secrets = match K::recorded_inputs(&r.status) {
                _ if !prepared.has_secrets => SecretState::Sent,
                Some(sent) if sent == prepared.inputs_hash => SecretState::Sent,
                Some(_) => SecretState::Changed,
                None => SecretState::Unknown,
            };
            K::drift(&prepared.desired, remote, secrets)
        }
        // Deleted in ngrok: managing would create it again.
        None => vec![FieldDifference {
            path: "id".into(),
            wanted: r.status.id().cloned(),
            actual: None,
            secret: None,
        }],
    };
    let differences = drift.iter().map(|d| d.path.clone()).collect();
    r.status.set_drift(drift);
    Ok(Synced::Observed {
        differences,
        requeue: interval,
    })
}
