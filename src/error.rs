//! Everything that can stop a reconcile, with the short PascalCase reason used in conditions,
//! events and metrics, and whether a person has to act (Stalled) or time will fix it.
//!
//! No variant carries a secret value: secrets are named by Secret and key only, and ngrok's
//! errors never echo request bodies.
//!
//! Split by concern: this file holds the variants, each with the wording of its message (which
//! `thiserror` needs on the variant); `classification` holds what the rest of the operator asks
//! of an error (its reason, its bounded message, whether it stalls, waits for another resource
//! or was fenced) and how a client error is sorted into a variant; `messages` builds the
//! messages whose wording depends on the variant's data. A new variant does not compile until
//! `classification` says whether it stalls.

mod classification;
mod messages;
#[cfg(test)]
mod tests;

use messages::{adoption_not_allowed, in_use_message, remote_field_hint};

/// The longest message the operator writes into a condition, an event or a log line.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// The longest note an Event may carry: `events.k8s.io/v1` refuses a note over 1024 bytes
/// (not characters), and a refused Event is lost.
pub const MAX_NOTE_BYTES: usize = 1024;

/// Why a reconcile did not finish. Its variant's name is its reason ([`Error::reason`]),
/// unless a `strum(serialize)` says otherwise.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum Error {
    #[error("Secret {name:?} does not exist in this namespace")]
    SecretNotFound { name: String },

    /// Only Secrets labelled for it may be referenced (see [`crate::crd::CREDENTIALS_LABEL`]):
    /// otherwise the right to create a resource would be the right to send any Secret of the
    /// namespace to ngrok.
    #[error(
        "Secret {name:?} is not labelled for use by ngrok resources; if it is meant for them, label it: kubectl label secret {name} -n {namespace} {label}=true",
        label = crate::crd::CREDENTIALS_LABEL
    )]
    SecretNotLabeled { name: String, namespace: String },

    #[error("Secret {name:?} has no key {key:?}")]
    SecretKeyNotFound { name: String, key: String },

    #[error("Secret {name:?} key {key:?} {problem}")]
    SecretValueInvalid {
        name: String,
        key: String,
        problem: &'static str,
    },

    /// A Secret value outside its bound (see [`crate::secrets::Shape`]): refused before it is
    /// copied, hashed or sent. `problem` states the bound, never the value.
    #[error("Secret {name:?} key {key:?} {problem}")]
    InvalidSecret {
        name: String,
        key: String,
        problem: String,
    },

    #[error(
        "no ngrok API key: set spec.apiKeyRef, or start the operator with NGROK_API_KEY or --api-key-file"
    )]
    ApiKeyMissing,

    #[error("spec.{field} {problem}")]
    InvalidSpec {
        field: &'static str,
        problem: String,
    },

    /// An annotation of the resource that does not parse or is out of bounds (reason
    /// `InvalidSpec`, like a spec field).
    #[error("annotation {annotation}: {problem}")]
    #[strum(serialize = "InvalidSpec")]
    InvalidAnnotation {
        annotation: &'static str,
        problem: String,
    },
    /// ngrok refused the request itself ([`ngrok_api::Error::is_refusal`], other than 401/403):
    /// the spec is wrong for ngrok, and retrying the same request cannot help.
    #[error("{0}")]
    NgrokRejected(#[source] ngrok_api::Error),

    #[error(
        "the ngrok API key was refused (check NGROK_API_KEY, or the Secret of spec.apiKeyRef): {0}"
    )]
    #[strum(serialize = "NgrokAuthenticationFailed")]
    NgrokAuthentication(#[source] ngrok_api::Error),

    #[error("{0}; retrying")]
    NgrokUnavailable(#[source] ngrok_api::Error),

    /// An answer outside ngrok's contract ([`ngrok_api::ErrorClass::Transient`]): a redirect, a
    /// body that does not parse, an error page that is not ngrok's, a conflict. Nothing says
    /// the spec is wrong, so it is retried with backoff and never remembered as refused; a
    /// reason of its own, because a redirect or a proxy's page that persists points at the
    /// network or the base URL, not at ngrok's availability.
    #[error("{0}; retrying later")]
    NgrokUnexpectedResponse(#[source] ngrok_api::Error),

    /// The resource's object exists in ngrok but this operator cannot read it (a target type
    /// ngrok added after this version, a `null` where a value belongs): it is neither compared
    /// nor changed. Other objects of the account are not affected. `detail` is the client's
    /// bounded reason, which quotes no value ([`ngrok_api::Unreadable::reason`]).
    #[error(
        "{id} exists in ngrok but this operator cannot read it ({detail}), so it is neither compared nor changed; retrying later. If it was edited outside Kubernetes into something the operator does not support, change it back; if ngrok added something new, upgrade the operator"
    )]
    RemoteUnreadable { id: String, detail: String },

    /// The resource's API key changed and its object `old_id` is not in the new key's account;
    /// the operator cannot tell whether the key moved to another account (the object should
    /// move along) or the object was deleted, because the previous account cannot be asked.
    /// Creating a new object could leave `old_id` unowned, with its credentials, so it stops.
    #[error(
        "the API key changed and {old_id} is not in the new key's account, and {cause}, so the operator cannot tell whether {old_id} was deleted or the key moved to another ngrok account; nothing is created, so that {old_id} is not left behind unowned. Put the previous key back so that the operator can move {old_id} to the new account, or delete {old_id} in the previous account yourself and re-create this resource"
    )]
    AccountChanged {
        old_id: String,
        cause: PreviousAccount,
    },

    #[error("{0}; looking for it before creating again")]
    NgrokUnknownOutcome(#[source] ngrok_api::Error),

    /// Leader election's fence stopped an ngrok call before it was sent: this replica does
    /// not hold the lease (reason `NotLeader`), or the lease might run out before the call
    /// could finish (`LeaseExpiring`). Time fixes it: the leader (this replica once it renewed
    /// the lease, or its successor) reconciles again.
    #[error("{0}; the leader retries")]
    LeaseNotHeld(#[source] ngrok_api::Error),

    /// This replica is not sure to hold the leader lease, so it writes nothing to Kubernetes
    /// either (a late status write of a deposed leader could undo its successor's).
    #[error("this replica is not sure to hold the leader lease; the leader reconciles")]
    NotLeader,

    /// After a create whose outcome was lost, more than one object in ngrok could be this
    /// resource's. Guessing could leave a twin or adopt someone else's.
    #[error(
        "a create's outcome was lost and several objects in ngrok match this resource: {}; delete the ones that are not this resource's in ngrok, or set annotation events.ngrok.io/adopt-id to the right one",
        candidates.join(", ")
    )]
    AmbiguousCreate { candidates: Vec<String> },

    #[error("adopt-id {id} does not exist in ngrok")]
    AdoptTargetNotFound { id: String },

    /// `owner` is `Kind name` in the same namespace; another namespace's is not named.
    #[error("adopt-id {id} is already managed by {owner}")]
    AdoptTargetInUse { id: String, owner: String },

    /// With the operator-wide key, `adopt-id` names a destination that a subscription of
    /// another namespace names: taking it over would redirect that subscription's events
    /// (reason `AdoptTargetInUse`). Nothing of the other namespace is named.
    #[error(
        "adopt-id {id} is named by a subscription in another namespace, so it cannot be adopted with the operator's ngrok API key: remove the annotation to create a destination of your own"
    )]
    #[strum(serialize = "AdoptTargetInUse")]
    AdoptTargetNamedElsewhere { id: String },

    /// With the operator-wide key, only namespaces the platform team selected may adopt: any
    /// object of the shared account that no resource manages (made with Terraform or the
    /// dashboard, another cluster's, one a `Retain` resource left) could otherwise be taken.
    #[error("{}", adoption_not_allowed(selector.as_deref(), namespace))]
    AdoptionNotAllowed {
        /// `--adoption-namespace-selector`; `None` when it is not set (no namespace may).
        selector: Option<String>,
        namespace: String,
    },

    /// A subscription names EventDestinations that have no ngrok id yet: nothing is sent until
    /// they do (each `waiting` entry names one and says why).
    #[error("waiting for {}", waiting.join("; "))]
    DestinationNotReady { waiting: Vec<String> },

    /// ngrok subscriptions can only name destinations of their own account.
    #[error(
        "EventDestination {destination:?} is in another ngrok account than this subscription (their API keys differ and the destination is not visible with this subscription's key): use the same apiKeyRef on both"
    )]
    AccountMismatch { destination: String },

    /// ngrok refuses to delete a destination a subscription names; the deletion waits (and is
    /// retried). `subscriptions`: the EventSubscriptions of this namespace that name it; none
    /// when only ngrok knows who does (a subscription managed elsewhere, or by no one), which
    /// the message then does not name.
    #[error("{}", in_use_message(subscriptions))]
    DestinationInUse { subscriptions: Vec<String> },

    /// A raw id in `destinationIds` that an EventDestination of another namespace manages. The
    /// message names no resource of that namespace.
    #[error(
        "spec.destinationIds: {id} is managed by an EventDestination in another namespace; a subscription may only name destinations of its own namespace (by destinationRefs) or destinations managed outside Kubernetes"
    )]
    DestinationOfAnotherNamespace { id: String },

    /// An update of the ngrok object would drop fields set outside Kubernetes that the spec
    /// does not name (a filter set in ngrok's dashboard), or that the operator does not model.
    /// Paths only: never a value.
    #[error(
        "{id} has {} in ngrok, which the spec does not name; updating its sources would drop {}, so nothing is sent: {}",
        fields.join(", "),
        if fields.len() == 1 { "it" } else { "them" },
        remote_field_hint(fields)
    )]
    RemoteFieldNotModeled { id: String, fields: Vec<String> },

    /// The operator-wide API key serves only the namespaces the platform team selected.
    #[error(
        "this namespace may not use the operator's ngrok API key (it is not selected by the operator's --operator-key-namespace-selector): set spec.apiKeyRef to a Secret with your team's own ngrok API key, or ask the platform team to label the namespace"
    )]
    OperatorKeyNotAllowed,

    #[error("waiting for another resource with identical content to finish creating")]
    CreateQueued,

    /// Deleting the resource's ngrok object needs its account, which cannot be reached now
    /// (`cause`: the API key's Secret is gone or unusable, or ngrok refuses the key; see
    /// [`Error::is_account_unreachable`]). Retried with backoff `attempts` times in all (its
    /// reason is the cause's); then the resource is released with a Warning
    /// `DeleteUnconfirmed`, so that a deletion always ends.
    /// The message does not change from one attempt to the next, so that the status write
    /// of an attempt does not trigger the next one at once: the backoff spaces them.
    #[error(
        "{cause}; deleting {what} needs this ngrok account: retried with backoff, {attempts} attempts in all, after which the resource is released and {what} may remain in ngrok"
    )]
    DeleteUnreachable {
        what: String,
        attempts: u32,
        cause: Box<Error>,
    },

    #[error("Kubernetes API: {0}")]
    #[strum(serialize = "KubernetesError")]
    Kube(#[from] kube::Error),

    /// Adding or removing the finalizer failed (apply's and cleanup's own errors are unwrapped).
    #[error("finalizer: {0}")]
    #[strum(serialize = "FinalizerError")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Why the account of a resource's previous API key cannot be compared with the new one's
/// (see [`Error::AccountChanged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviousAccount {
    /// The operator restarted since the key changed: it never held the previous key.
    Forgotten,
    /// ngrok refuses the previous key now (revoked, or its account closed).
    KeyRefused,
    /// One of the two keys may not list its account's API keys (ngrok answered 403 to
    /// `GET /api_keys`), so the accounts cannot be compared.
    CannotListKeys,
}

impl std::fmt::Display for PreviousAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PreviousAccount::Forgotten => {
                "the operator no longer knows the previous key (it restarted since the key changed)"
            }
            PreviousAccount::KeyRefused => "ngrok refuses the previous key",
            PreviousAccount::CannotListKeys => {
                "ngrok does not let one of the keys list its account's API keys, which is how the operator tells accounts apart"
            }
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
