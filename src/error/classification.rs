//! What the rest of the operator asks of an [`Error`]: its reason, its message as shown, and
//! the policies that follow from the variant (Stalled or retried, account unreachable, waiting
//! for another resource, fenced); and how a client error becomes a variant. Every policy is
//! here, apart from the variants, so that one can be read and changed as a whole.

use super::{Error, MAX_MESSAGE_CHARS};

impl Error {
    /// Short PascalCase reason for conditions, events and the `result` label of metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            // A lease's and an unreachable account's reasons say which, from their cause.
            Error::LeaseNotHeld(e) => e.fence_reason().map_or("NotLeader", |r| r.as_str()),
            Error::DeleteUnreachable { cause, .. } => cause.reason(),
            other => other.into(),
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
            | Error::InvalidSecret { .. }
            | Error::ApiKeyMissing
            | Error::InvalidSpec { .. }
            | Error::InvalidAnnotation { .. }
            | Error::NgrokRejected(_)
            | Error::NgrokAuthentication(_)
            | Error::AmbiguousCreate { .. }
            | Error::AdoptTargetNotFound { .. }
            | Error::AdoptTargetInUse { .. }
            | Error::AdoptTargetNamedElsewhere { .. }
            | Error::AdoptionNotAllowed { .. }
            | Error::AccountMismatch { .. }
            | Error::DestinationOfAnotherNamespace { .. }
            | Error::OperatorKeyNotAllowed
            | Error::RemoteFieldNotModeled { .. }
            | Error::AccountChanged { .. } => true,
            // Each waits for another resource, whose change triggers this one.
            Error::DestinationNotReady { .. } | Error::DestinationInUse { .. } => false,
            // Nothing a person does to the resource fixes these (an edit in ngrok's dashboard,
            // an operator upgrade or the network does, and none of them triggers a reconcile),
            // so they must keep being retried rather than wait for a change.
            Error::NgrokUnexpectedResponse(_) | Error::RemoteUnreadable { .. } => false,
            Error::NgrokUnavailable(_)
            | Error::NgrokUnknownOutcome(_)
            | Error::LeaseNotHeld(_)
            | Error::NotLeader
            | Error::CreateQueued
            | Error::Kube(_)
            | Error::Finalizer(_) => false,
            // Retried a bounded number of times, then the deletion ends without it.
            Error::DeleteUnreachable { .. } => false,
        }
    }

    /// True when the resource's ngrok account cannot be reached with what the resource names:
    /// the API key's Secret is missing or unusable, there is no key, or ngrok refuses the key.
    /// A deletion retries these only a bounded number of times ([`Error::DeleteUnreachable`]).
    pub fn is_account_unreachable(&self) -> bool {
        matches!(
            self,
            Error::SecretNotFound { .. }
                | Error::SecretNotLabeled { .. }
                | Error::SecretKeyNotFound { .. }
                | Error::SecretValueInvalid { .. }
                | Error::ApiKeyMissing
                | Error::NgrokAuthentication(_)
        )
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

    /// True when leader election's fence stopped the work: the leader retries soon.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Error::LeaseNotHeld(_) | Error::NotLeader)
    }

    /// True when ngrok refused the API key.
    pub fn is_ngrok_authentication(&self) -> bool {
        matches!(self, Error::NgrokAuthentication(_))
    }

    /// Sorts a client error by what the reconciler should do about it. Only a refusal by
    /// ngrok itself ([`ngrok_api::Error::is_refusal`]) or a 404 becomes `NgrokRejected` or
    /// `NgrokAuthentication`, the two the engine remembers as refused; anything outside
    /// ngrok's contract is retried.
    pub fn from_ngrok(error: ngrok_api::Error) -> Self {
        use ngrok_api::ErrorClass;
        match error.class() {
            // A create cut off by the fence after sending stays an unknown outcome (below).
            ErrorClass::Retryable if error.fence_reason().is_some() => Error::LeaseNotHeld(error),
            ErrorClass::UnknownOutcome => Error::NgrokUnknownOutcome(error),
            ErrorClass::Retryable => Error::NgrokUnavailable(error),
            ErrorClass::Transient => Error::NgrokUnexpectedResponse(error),
            _ if error.is_refusal() && matches!(error.status(), Some(401 | 403)) => {
                Error::NgrokAuthentication(error)
            }
            // Not found is handled where it is expected (get, delete); anywhere else the
            // request referred to something that does not exist, which a retry will not fix.
            // A client that cannot be configured (a key with characters no header allows) is
            // as final as a refusal.
            ErrorClass::NotFound | ErrorClass::Terminal => Error::NgrokRejected(error),
        }
    }
}

impl From<ngrok_api::Error> for Error {
    fn from(error: ngrok_api::Error) -> Self {
        Error::from_ngrok(error)
    }
}
