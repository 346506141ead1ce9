//! Everything that can stop a reconcile, with the short PascalCase reason used in conditions,
//! events and metrics, and whether a person has to act (Stalled) or time will fix it.
//!
//! No variant carries a secret value: secrets are named by Secret and key only, and ngrok's
//! errors never echo request bodies.

/// The longest message the operator writes into a condition, an event or a log line.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Secret {name:?} does not exist in this namespace")]
    SecretNotFound { name: String },

    /// Only Secrets labelled for it may be referenced (see [`crate::secrets::CREDENTIALS_LABEL`]):
    /// otherwise the right to create a resource would be the right to send any Secret of the
    /// namespace to ngrok.
    #[error(
        "Secret {name:?} is not labelled for use by ngrok resources; if it is meant for them, label it: kubectl label secret {name} -n {namespace} {label}=true",
        label = crate::secrets::CREDENTIALS_LABEL
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
    InvalidAnnotation {
        annotation: &'static str,
        problem: String,
    },
    /// ngrok refused the request itself (4xx other than 401/403/404/429): the spec is wrong for
    /// ngrok, and retrying the same request cannot help.
    #[error("{0}")]
    NgrokRejected(#[source] ngrok_api::Error),

    #[error(
        "the ngrok API key was refused (check NGROK_API_KEY, or the Secret of spec.apiKeyRef): {0}"
    )]
    NgrokAuthentication(#[source] ngrok_api::Error),

    #[error("{0}; retrying")]
    NgrokUnavailable(#[source] ngrok_api::Error),

    #[error("{0}; looking for it before creating again")]
    NgrokUnknownOutcome(#[source] ngrok_api::Error),

    /// Leader election's fence stopped an ngrok call before it was sent: this replica does
    /// not hold the lease (reason `NotLeader`), or the lease might run out before the call
    /// could finish (`LeaseExpiring`). Time fixes it: the leader (this replica once it renewed
    /// the lease, or its successor) reconciles again.
    #[error("{0}; the leader retries")]
    LeaseNotHeld(#[source] ngrok_api::Error),

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

    /// A subscription names EventDestinations that have no ngrok id yet: nothing is sent until
    /// they do (each `waiting` entry names one and says why).
    #[error("waiting for {}", waiting.join("; "))]
    DestinationNotReady { waiting: Vec<String> },

    /// ngrok subscriptions can only name destinations of their own account.
    #[error(
        "EventDestination {destination:?} is in another ngrok account than this subscription (their API keys differ and the destination is not visible with this subscription's key): use the same apiKeyRef on both"
    )]
    AccountMismatch { destination: String },

    /// ngrok refuses to delete a destination a subscription names; the deletion waits.
    #[error(
        "still used by EventSubscription {}: the destination is deleted once they no longer name it (remove it from their destinationRefs or delete them)",
        subscriptions.join(", ")
    )]
    DestinationInUse { subscriptions: Vec<String> },

    /// A raw id in `destinationIds` that an EventDestination of another namespace manages. The
    /// message names no resource of that namespace.
    #[error(
        "spec.destinationIds: {id} is managed by an EventDestination in another namespace; a subscription may only name destinations of its own namespace (by destinationRefs) or destinations managed outside Kubernetes"
    )]
    DestinationOfAnotherNamespace { id: String },

    /// The operator-wide API key serves only the namespaces the platform team selected.
    #[error(
        "this namespace may not use the operator's ngrok API key (it is not selected by the operator's --operator-key-namespace-selector): set spec.apiKeyRef to a Secret with your team's own ngrok API key, or ask the platform team to label the namespace"
    )]
    OperatorKeyNotAllowed,

    #[error("waiting for another resource with identical content to finish creating")]
    CreateQueued,

    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// Adding or removing the finalizer failed (apply's and cleanup's own errors are unwrapped).
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Short PascalCase reason for conditions, events and the `result` label of metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::SecretNotFound { .. } => "SecretNotFound",
            Error::SecretNotLabeled { .. } => "SecretNotLabeled",
            Error::SecretKeyNotFound { .. } => "SecretKeyNotFound",
            Error::SecretValueInvalid { .. } => "SecretValueInvalid",
            Error::ApiKeyMissing => "ApiKeyMissing",
            Error::InvalidSpec { .. } | Error::InvalidAnnotation { .. } => "InvalidSpec",
            Error::NgrokRejected(_) => "NgrokRejected",
            Error::NgrokAuthentication(_) => "NgrokAuthenticationFailed",
            Error::NgrokUnavailable(_) => "NgrokUnavailable",
            Error::NgrokUnknownOutcome(_) => "NgrokUnknownOutcome",
            Error::LeaseNotHeld(e) => e.fence_reason().map_or("NotLeader", |r| r.as_str()),
            Error::AmbiguousCreate { .. } => "AmbiguousCreate",
            Error::AdoptTargetNotFound { .. } => "AdoptTargetNotFound",
            Error::AdoptTargetInUse { .. } => "AdoptTargetInUse",
            Error::DestinationNotReady { .. } => "DestinationNotReady",
            Error::AccountMismatch { .. } => "AccountMismatch",
            Error::DestinationInUse { .. } => "DestinationInUse",
            Error::DestinationOfAnotherNamespace { .. } => "DestinationOfAnotherNamespace",
            Error::OperatorKeyNotAllowed => "OperatorKeyNotAllowed",
            Error::CreateQueued => "CreateQueued",
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerError",
        }
    }

    /// The error as a condition message, an event note or a log field shows it: one line and
    /// bounded, whatever ngrok or a tenant put into it.
    pub fn message(&self) -> String {
        ngrok_api::text::one_line(&self.to_string(), MAX_MESSAGE_CHARS)
    }

    /// True when a person must act before a retry can succeed (kstatus `Stalled`). Such errors
    /// are not retried until the resource or a Secret it references changes.
    pub fn is_stalled(&self) -> bool {
        match self {
            Error::SecretNotFound { .. }
            | Error::SecretNotLabeled { .. }
            | Error::SecretKeyNotFound { .. }
            | Error::SecretValueInvalid { .. }
            | Error::ApiKeyMissing
            | Error::InvalidSpec { .. }
            | Error::InvalidAnnotation { .. }
            | Error::NgrokRejected(_)
            | Error::NgrokAuthentication(_)
            | Error::AmbiguousCreate { .. }
            | Error::AdoptTargetNotFound { .. }
            | Error::AdoptTargetInUse { .. }
            | Error::AccountMismatch { .. }
            | Error::DestinationOfAnotherNamespace { .. }
            | Error::OperatorKeyNotAllowed => true,
            // Each waits for another resource, whose change triggers this one.
            Error::DestinationNotReady { .. } | Error::DestinationInUse { .. } => false,
            Error::NgrokUnavailable(_)
            | Error::NgrokUnknownOutcome(_)
            | Error::LeaseNotHeld(_)
            | Error::CreateQueued
            | Error::Kube(_)
            | Error::Finalizer(_) => false,
        }
    }

    /// True when the reconcile waits for another resource to change (it is triggered by that
    /// change; its retries are only a safety net and are not worth a warning).
    pub fn waits_for_another_resource(&self) -> bool {
        matches!(
            self,
            Error::DestinationNotReady { .. }
                | Error::DestinationInUse { .. }
                | Error::CreateQueued
        )
    }

    /// Sorts a client error by what the reconciler should do about it.
    pub fn from_ngrok(error: ngrok_api::Error) -> Self {
        use ngrok_api::ErrorClass;
        match error.class() {
            // A create cut off by the fence after sending stays an unknown outcome (below).
            ErrorClass::Retryable if error.fence_reason().is_some() => Error::LeaseNotHeld(error),
            ErrorClass::UnknownOutcome => Error::NgrokUnknownOutcome(error),
            ErrorClass::Retryable => Error::NgrokUnavailable(error),
            _ if matches!(error.status(), Some(401 | 403)) => Error::NgrokAuthentication(error),
            // Not found is handled where it is expected (get, delete); anywhere else the
            // request referred to something that does not exist, which a retry will not fix.
            ErrorClass::NotFound | ErrorClass::Terminal => Error::NgrokRejected(error),
        }
    }
}

impl From<ngrok_api::Error> for Error {
    fn from(error: ngrok_api::Error) -> Self {
        Error::from_ngrok(error)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use ngrok_api::{FenceReason, Operation};

    fn fenced(method: &'static str, reason: FenceReason, sent: bool) -> Error {
        Error::from_ngrok(ngrok_api::Error::Fenced {
            operation: Operation {
                method,
                path: "/event_destinations".into(),
                resource: "destination",
            },
            reason,
            sent,
        })
    }

    #[test]
    fn a_fenced_call_is_retried_with_its_own_reason_and_a_cut_off_create_is_looked_for() {
        let refused = fenced("POST", FenceReason::LeaseExpiring, false);
        assert!(matches!(refused, Error::LeaseNotHeld(_)));
        assert_eq!(refused.reason(), "LeaseExpiring");
        assert!(!refused.is_stalled());
        let not_leader = fenced("PATCH", FenceReason::NotLeader, true);
        assert_eq!(not_leader.reason(), "NotLeader");
        assert!(!not_leader.is_stalled());
        let cut_off = fenced("POST", FenceReason::LeaseExpiring, true);
        assert!(
            matches!(cut_off, Error::NgrokUnknownOutcome(_)),
            "{cut_off:?}"
        );
    }
}
