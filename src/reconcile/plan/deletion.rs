//! Deletion's decisions, as pure functions, planned like creation's: which policy applies
//! ([`policy_in_effect`]) and whether it keeps the object ([`kept_because`]), what to read from
//! ngrok ([`cleanup_read`]), then what to do ([`cleanup`]), with the one lost-create rule
//! ([`super::apply::lost_create`]) shared by both; and when a deletion that cannot reach its account
//! stops trying ([`unreachable`]). `cleanup.rs` only acts.

use super::apply::{Compare, lost_create_in};
use super::{Read, RemoteObject, Seen};
use crate::crd::{DeletionPolicy, PendingCreate};
use crate::error::Error;

/// How many attempts of a deletion may fail to reach the resource's account (its API key's
/// Secret gone or unusable, the key refused) before the resource is released without
/// confirmation (a Warning `DeleteUnconfirmed` naming the id). With the usual backoff (1 s,
/// 2 s, 4 s, 8 s, each plus jitter) that is well under a minute after the first attempt.
pub const UNREACHABLE_DELETE_ATTEMPTS: u32 = 5;

/// Where the deletion policy in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The resource's own `spec.deletionPolicy`.
    Resource,
    /// Its namespace's annotation `events.ngrok.io/default-deletion-policy`.
    Namespace,
    /// That annotation, with a value that is neither `Delete` nor `Retain`.
    UnreadableNamespace,
    /// The operator's `--default-deletion-policy`.
    Operator,
}

/// The deletion policy that applies to a resource, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyInEffect {
    pub policy: DeletionPolicy,
    pub source: PolicySource,
}

/// The resource's own policy, else its namespace's annotation (`namespace`, its raw value),
/// else the operator's default. An annotation that is neither `Delete` nor `Retain` keeps the
/// objects: a typo in a namespace's annotation never deletes anything.
pub fn policy_in_effect(
    own: Option<DeletionPolicy>,
    namespace: Option<&str>,
    operator: DeletionPolicy,
) -> PolicyInEffect {
    let (policy, source) = match (own, namespace.map(str::parse::<DeletionPolicy>)) {
        (Some(policy), _) => (policy, PolicySource::Resource),
        (None, Some(Ok(policy))) => (policy, PolicySource::Namespace),
        (None, Some(Err(_))) => (DeletionPolicy::Retain, PolicySource::UnreadableNamespace),
        (None, None) => (operator, PolicySource::Operator),
    };
    PolicyInEffect { policy, source }
}

/// Why the ngrok object stays when the resource goes, if it does: its policy in effect, a
/// pause, or observing (`observing` is `None` when the management annotation is unreadable,
/// and such a resource never deletes either).
pub fn kept_because(
    policy: PolicyInEffect,
    paused: bool,
    observing: Option<bool>,
) -> Option<&'static str> {
    match (policy.policy, policy.source) {
        (DeletionPolicy::Retain, PolicySource::Resource) => Some("deletionPolicy is Retain"),
        (DeletionPolicy::Retain, PolicySource::Namespace) => {
            Some("the namespace's default deletion policy is Retain")
        }
        (DeletionPolicy::Retain, PolicySource::UnreadableNamespace) => Some(
            "the namespace's events.ngrok.io/default-deletion-policy is neither Delete nor Retain",
        ),
        (DeletionPolicy::Retain, PolicySource::Operator) => {
            Some("the operator's --default-deletion-policy is Retain")
        }
        (DeletionPolicy::Delete, _) if paused => Some("the resource is paused"),
        (DeletionPolicy::Delete, _) if observing.unwrap_or(true) => {
            Some("the resource only observes")
        }
        (DeletionPolicy::Delete, _) => None,
    }
}

/// Everything deletion's decisions need besides what ngrok holds.
pub struct CleanupFacts<'a> {
    /// ngrok's id of the object: the status's, or one this process created and the status
    /// does not record yet.
    pub id: Option<&'a str>,
    /// An intent to create whose outcome is not known.
    pub pending: Option<&'a PendingCreate>,
    /// Why the object stays in ngrok, if it does (`deletionPolicy: Retain`, paused, observing).
    pub kept: Option<&'static str>,
    /// The lost-create search was not made: another reconcile creates or searches for the
    /// same content in the account now (its create guard is held elsewhere).
    pub search_waits: bool,
}

/// What deletion does.
#[derive(Debug)]
pub enum Deletion {
    /// Nothing in ngrok is the resource's: the finalizer goes.
    Release,
    /// The object stays in ngrok (event `Retained`); the finalizer goes.
    Retain { id: String, why: &'static str },
    /// Delete the object, then release the resource.
    Delete(String),
    /// Release the resource without having deleted `what` (event `DeleteUnconfirmed`).
    Unconfirmed { what: String, cause: String },
    /// Stalled or retried, as [`Error::is_stalled`] says.
    Failed(Error),
}

/// Whether deciding needs the resource's ngrok account at all: a retained resource, or one
/// that never had an object, goes without it.
pub fn cleanup_needs_account(facts: &CleanupFacts<'_>) -> bool {
    facts.kept.is_none() && (facts.id.is_some() || facts.pending.is_some())
}

/// What must be read from ngrok to decide: the outcome of a lost create, when the resource
/// has an intent and no id.
pub fn cleanup_read(facts: &CleanupFacts<'_>) -> Read {
    match (facts.kept, facts.id, facts.pending) {
        (None, None, Some(pending)) => Read::LostCreate(pending.clone()),
        _ => Read::Nothing,
    }
}

/// What to do, given the facts and what [`cleanup_read`] asked ngrok.
pub fn cleanup<K: Compare>(facts: &CleanupFacts<'_>, seen: Seen<K::Remote>) -> Deletion {
    if let Some(why) = facts.kept {
        return match facts.id {
            Some(id) => Deletion::Retain {
                id: id.to_string(),
                why,
            },
            None => Deletion::Release,
        };
    }
    if let Some(id) = facts.id {
        return Deletion::Delete(id.to_string());
    }
    match seen {
        // The same rule as creation's: the claimed set and the create guard are the search's,
        // the twin rule and the listing's completeness are `lost_create`'s.
        Seen::Candidates {
            listing,
            claimed,
            complete,
            alike,
        } => match lost_create_in::<K>(facts.pending, &listing, &claimed, complete, alike) {
            Ok(None) => Deletion::Release,
            Ok(Some(remote)) => Deletion::Delete(remote.id().to_string()),
            Err(error) => Deletion::Failed(error),
        },
        // No id and no intent: nothing was ever created.
        _ if facts.pending.is_none() => Deletion::Release,
        // The search waits for its turn, as a create would.
        _ if facts.search_waits => Deletion::Failed(Error::CreateQueued),
        // `cleanup_read` asked for the candidates: without them nothing is decided.
        _ => Deletion::Failed(Error::RemoteUnreadable {
            id: "the outcome of a lost create".into(),
            detail: "the account's listing was not read".into(),
        }),
    }
}

/// The resource's account could not be reached (`cause`, see
/// [`Error::is_account_unreachable`]) at the `attempt`-th time of this deletion: retried with
/// backoff, until the last attempt releases the resource without confirmation. A namespace
/// never waits for ever on an account no key reaches.
pub fn unreachable(facts: &CleanupFacts<'_>, attempt: u32, cause: Error) -> Deletion {
    let what = match facts.id {
        Some(id) => id.to_string(),
        None => "the object of a create whose outcome was lost (if it was created)".into(),
    };
    if attempt >= UNREACHABLE_DELETE_ATTEMPTS {
        return Deletion::Unconfirmed {
            what,
            cause: cause.message(),
        };
    }
    Deletion::Failed(Error::DeleteUnreachable {
        what,
        attempts: UNREACHABLE_DELETE_ATTEMPTS,
        cause: Box::new(cause),
    })
}
