//! Everything that can stop a reconcile, with the short PascalCase reason used in conditions,
//! events and metrics, and whether a person has to act (Stalled) or time will fix it.
//!
//! No variant carries a secret value: secrets are named by Secret and key only, and ngrok's
//! errors never echo request bodies.

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Secret {name:?} does not exist in this namespace")]
    SecretNotFound { name: String },

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

    /// The `events.ngrok.io/management` annotation is unusable (reason `InvalidSpec`).
    #[error("annotation events.ngrok.io/management: {0}")]
    InvalidManagement(String),

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

    /// After a create whose outcome was lost, more than one object in ngrok could be this
    /// resource's. Guessing could leave a twin or adopt someone else's.
    #[error(
        "a create's outcome was lost and several objects in ngrok match this resource: {}; delete the ones that are not this resource's in ngrok, or set annotation events.ngrok.io/adopt-id to the right one",
        candidates.join(", ")
    )]
    AmbiguousCreate { candidates: Vec<String> },

    #[error("adopt-id {id} does not exist in ngrok")]
    AdoptTargetNotFound { id: String },

    /// `owner` is `Kind namespace/name`.
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
            Error::SecretKeyNotFound { .. } => "SecretKeyNotFound",
            Error::SecretValueInvalid { .. } => "SecretValueInvalid",
            Error::ApiKeyMissing => "ApiKeyMissing",
            Error::InvalidSpec { .. } | Error::InvalidManagement(_) => "InvalidSpec",
            Error::NgrokRejected(_) => "NgrokRejected",
            Error::NgrokAuthentication(_) => "NgrokAuthenticationFailed",
            Error::NgrokUnavailable(_) => "NgrokUnavailable",
            Error::NgrokUnknownOutcome(_) => "NgrokUnknownOutcome",
            Error::AmbiguousCreate { .. } => "AmbiguousCreate",
            Error::AdoptTargetNotFound { .. } => "AdoptTargetNotFound",
            Error::AdoptTargetInUse { .. } => "AdoptTargetInUse",
            Error::DestinationNotReady { .. } => "DestinationNotReady",
            Error::AccountMismatch { .. } => "AccountMismatch",
            Error::DestinationInUse { .. } => "DestinationInUse",
            Error::CreateQueued => "CreateQueued",
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerError",
        }
    }

    /// True when a person must act before a retry can succeed (kstatus `Stalled`). Such errors
    /// are not retried until the resource or a Secret it references changes.
    pub fn is_stalled(&self) -> bool {
        match self {
            Error::SecretNotFound { .. }
            | Error::SecretKeyNotFound { .. }
            | Error::SecretValueInvalid { .. }
            | Error::ApiKeyMissing
            | Error::InvalidSpec { .. }
            | Error::InvalidManagement(_)
            | Error::NgrokRejected(_)
            | Error::NgrokAuthentication(_)
            | Error::AmbiguousCreate { .. }
            | Error::AdoptTargetNotFound { .. }
            | Error::AdoptTargetInUse { .. }
            | Error::AccountMismatch { .. } => true,
            // Each waits for another resource, whose change triggers this one.
            Error::DestinationNotReady { .. } | Error::DestinationInUse { .. } => false,
            Error::NgrokUnavailable(_)
            | Error::NgrokUnknownOutcome(_)
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
