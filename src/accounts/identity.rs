//! Which ngrok account an API key belongs to, so that a change of a resource's key can be
//! told apart: a rotation within the same account (nothing to do), a move to another account
//! (the object moves along), or something the operator cannot decide (it stops and says so).
//!
//! ngrok's API has no account id, but a key can list its account's API keys
//! (`GET /api_keys`): two keys are of the same account exactly when their listings share a key
//! id. The listing never carries a key itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use ngrok_api::Secret;
use sha2::{Digest, Sha256};

use crate::error::PreviousAccount;

/// The ids (`ak_…`) of an account's API keys at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity(BTreeSet<String>);

impl Identity {
    pub fn from_ids(ids: impl IntoIterator<Item = String>) -> Self {
        Self(ids.into_iter().collect())
    }

    /// No key listed: the key may not see its account's keys (a listing always holds at least
    /// the key that made it), so this identity says nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Whether two identities are of the same account: they share a key. Two keys of one account
/// always list each other while both exist; an account's keys are never another's.
pub fn same_account(a: &Identity, b: &Identity) -> bool {
    !a.0.is_disjoint(&b.0)
}

/// What asking a key for its account's identity gave. Transient failures are not here: the
/// caller retries them (`?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownIdentity {
    Known(Arc<Identity>),
    /// ngrok refuses the key (401): revoked, or its account is gone.
    KeyRefused,
    /// The key may not list API keys (403, or an empty list).
    CannotList,
}

impl KnownIdentity {
    /// Sorts the answer of [`Account::identity`](super::Account::identity): `Err` only for
    /// what time may fix.
    pub fn from_result(
        result: ngrok_api::Result<Arc<Identity>>,
    ) -> ngrok_api::Result<KnownIdentity> {
        match result {
            Ok(identity) if identity.is_empty() => Ok(KnownIdentity::CannotList),
            Ok(identity) => Ok(KnownIdentity::Known(identity)),
            Err(e) if e.is_refusal() && e.status() == Some(401) => Ok(KnownIdentity::KeyRefused),
            Err(e) if e.is_refusal() => Ok(KnownIdentity::CannotList),
            Err(e) => Err(e),
        }
    }
}

/// What a 404 for a resource's object means when its API key changed since the object was
/// created (or adopted) with the previous key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Both keys are of one account: the object really was deleted (re-create it).
    SameAccount,
    /// The new key is of another account, and the previous key still works: move the object
    /// (create it in the new account, delete the old one with the previous key).
    OtherAccount,
    /// Cannot tell: stop with [`Error::AccountChanged`](crate::error::Error::AccountChanged).
    CannotTell(PreviousAccount),
}

/// Decides [`AccountChange`] from the previous key's identity (`None` when the process no
/// longer knows the previous key, e.g. after a restart) and the current key's.
pub fn account_change(previous: Option<&KnownIdentity>, current: &KnownIdentity) -> AccountChange {
    use KnownIdentity::*;
    match (previous, current) {
        (None, _) => AccountChange::CannotTell(PreviousAccount::Forgotten),
        (Some(KeyRefused), _) => AccountChange::CannotTell(PreviousAccount::KeyRefused),
        (Some(CannotList), _) | (_, CannotList | KeyRefused) => {
            AccountChange::CannotTell(PreviousAccount::CannotListKeys)
        }
        (Some(Known(previous)), Known(current)) if same_account(previous, current) => {
            AccountChange::SameAccount
        }
        (Some(Known(_)), Known(_)) => AccountChange::OtherAccount,
    }
}

/// A short, non-reversible name of an API key: 12 hex digits of a domain-separated SHA-256.
/// Safe to store in a status: it tells whether two keys are the same, and nothing about the
/// key (which is long and random, so 48 bits of its hash cannot be searched back).
pub fn key_fingerprint(api_key: &Secret) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ngrok-events-operator key fingerprint\0");
    hash.update(api_key.expose().as_bytes());
    hex::encode(&hash.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(ids: &[&str]) -> Identity {
        Identity::from_ids(ids.iter().map(|id| id.to_string()))
    }

    fn known(ids: &[&str]) -> KnownIdentity {
        KnownIdentity::Known(Arc::new(identity(ids)))
    }

    #[test]
    fn same_account_is_a_shared_key() {
        let a = identity(&["ak_1", "ak_2"]);
        assert!(same_account(&a, &identity(&["ak_2", "ak_3"])));
        assert!(same_account(&a, &a));
        assert!(!same_account(&a, &identity(&["ak_9"])));
        assert!(!same_account(&identity(&[]), &identity(&[])));
    }

    /// One row per case of the engine's design: rotation, move, and each way of not knowing.
    #[test]
    fn account_change_row_by_row() {
        use AccountChange::*;
        use KnownIdentity::*;
        let rows = [
            (
                "rotation in one account",
                Some(known(&["ak_1", "ak_2"])),
                known(&["ak_1", "ak_2"]),
                SameAccount,
            ),
            (
                "the new key listed later",
                Some(known(&["ak_1"])),
                known(&["ak_1", "ak_2"]),
                SameAccount,
            ),
            (
                "another account",
                Some(known(&["ak_1"])),
                known(&["ak_9"]),
                OtherAccount,
            ),
            (
                "restarted since",
                None,
                known(&["ak_9"]),
                CannotTell(PreviousAccount::Forgotten),
            ),
            (
                "previous key revoked",
                Some(KeyRefused),
                known(&["ak_9"]),
                CannotTell(PreviousAccount::KeyRefused),
            ),
            (
                "previous may not list",
                Some(CannotList),
                known(&["ak_9"]),
                CannotTell(PreviousAccount::CannotListKeys),
            ),
            (
                "new may not list",
                Some(known(&["ak_1"])),
                CannotList,
                CannotTell(PreviousAccount::CannotListKeys),
            ),
        ];
        for (row, previous, current, expected) in rows {
            assert_eq!(
                account_change(previous.as_ref(), &current),
                expected,
                "{row}"
            );
        }
    }

    #[test]
    fn identity_answers_are_sorted_by_what_time_can_fix() {
        let op = ngrok_api::Operation {
            method: "GET",
            path: "/api_keys".into(),
            resource: "API key",
        };
        let api = |status, ngrok_body| -> ngrok_api::Error {
            ngrok_api::ApiError {
                status,
                error_code: None,
                msg: "m".into(),
                operation_id: None,
                retry_after: None,
                operation: op.clone(),
                ngrok_body,
            }
            .into()
        };
        assert_eq!(
            KnownIdentity::from_result(Err(api(401, true))).unwrap(),
            KnownIdentity::KeyRefused
        );
        assert_eq!(
            KnownIdentity::from_result(Err(api(403, true))).unwrap(),
            KnownIdentity::CannotList
        );
        assert_eq!(
            KnownIdentity::from_result(Ok(Arc::new(identity(&[])))).unwrap(),
            KnownIdentity::CannotList
        );
        assert!(KnownIdentity::from_result(Err(api(503, true))).is_err());
        assert!(KnownIdentity::from_result(Err(api(403, false))).is_err());
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_hide_them() {
        let a = key_fingerprint(&Secret::new("key-a"));
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, key_fingerprint(&Secret::new("key-a")));
        assert_ne!(a, key_fingerprint(&Secret::new("key-b")));
        // Not a prefix of the plain hash that keys the accounts map.
        let plain = hex::encode(Sha256::digest(b"key-a"));
        assert!(!plain.starts_with(&a));
    }
}
