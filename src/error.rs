//! Everything that can stop a reconcile, with the short PascalCase reason used in conditions,
//! events and metrics, and whether a person has to act (Stalled) or time will fix it.
//!
//! No variant carries a secret value: secrets are named by Secret and key only, and ngrok's
//! errors never echo request bodies.

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

fn in_use_message(subscriptions: &[String]) -> String {
    if subscriptions.is_empty() {
        return "ngrok refuses to delete the destination: an ngrok event subscription still names it (one this resource's namespace does not manage, or a subscription that was just changed); the deletion is retried and completes once no subscription names the destination".into();
    }
    format!(
        "still used by EventSubscription {}: the destination is deleted once they no longer name it (remove it from their destinationRefs or delete them)",
        subscriptions.join(", ")
    )
}

/// What to do about [`Error::RemoteFieldNotModeled`]: a filter can be named in the spec; a
/// field the operator does not model can only be removed in ngrok.
fn remote_field_hint(fields: &[String]) -> &'static str {
    let filters_only = fields.iter().all(|f| f.ends_with("].filter"));
    let no_filter = !fields.iter().any(|f| f.ends_with("].filter"));
    if filters_only {
        "name it in the spec (spec.sources[].filter, as `ngrok-events-operator import` or observe mode shows it), or set filter: \"\" to remove it"
    } else if no_filter {
        "this operator does not model it: remove it in ngrok (dashboard or API), or keep the spec's sources as ngrok has them"
    } else {
        "name the filters in the spec (spec.sources[].filter, or filter: \"\" to remove one); the operator does not model the other fields: remove them in ngrok (dashboard or API)"
    }
}

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

/// The message of [`Error::AdoptionNotAllowed`]: which label the namespace needs, from the
/// selector (a `kubectl label` command when the selector is one `key=value`).
fn adoption_not_allowed(selector: Option<&str>, namespace: &str) -> String {
    let own_key = "or set spec.apiKeyRef to a Secret with your team's own ngrok API key (a team may always adopt from its own account)";
    let Some(selector) = selector else {
        return format!(
            "annotation {ADOPT}: no namespace may adopt ngrok objects with the operator's ngrok API key (the operator's --adoption-namespace-selector is not set): ask the platform team to select this namespace, {own_key}",
            ADOPT = crate::crd::ADOPT_ID_ANNOTATION
        );
    };
    let equality = selector
        .split_once("==")
        .or_else(|| selector.split_once('='))
        .filter(|(key, value)| {
            !key.is_empty() && !selector.contains([',', '!', '(', ' ']) && !value.contains('=')
        });
    let label = match equality {
        Some((key, value)) => format!(" (kubectl label namespace {namespace} {key}={value})"),
        None => String::new(),
    };
    format!(
        "annotation {ADOPT}: this namespace may not adopt ngrok objects with the operator's ngrok API key: ask the platform team to label the namespace to match --adoption-namespace-selector={selector}{label}, {own_key}",
        ADOPT = crate::crd::ADOPT_ID_ANNOTATION
    )
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ngrok_api::{ApiError, FenceReason, Operation};

    use super::*;

    fn operation(method: &'static str) -> Operation {
        Operation {
            method,
            path: "/event_destinations/ed_1".into(),
            resource: "destination",
        }
    }

    fn api(status: u16, ngrok_body: bool) -> ngrok_api::Error {
        ApiError {
            status,
            error_code: ngrok_body.then(|| "ERR_NGROK_400".to_owned()),
            msg: "refused".into(),
            operation_id: None,
            retry_after: None::<Duration>,
            operation: operation("PATCH"),
            ngrok_body,
        }
        .into()
    }

    fn unreadable(method: &'static str) -> ngrok_api::Error {
        ngrok_api::Error::InvalidResponse {
            operation: operation(method),
            detail: "Eof error at line 1 column 9".into(),
        }
    }

    /// Which client failures the engine may remember as refused (the reasons `apply` memoises:
    /// `NgrokRejected`, `NgrokAuthenticationFailed`), row by row.
    #[test]
    fn only_ngroks_own_refusals_are_remembered_as_refused() {
        let rows: Vec<(&str, ngrok_api::Error, &str, bool)> = vec![
            ("400 from ngrok", api(400, true), "NgrokRejected", true),
            ("422 from ngrok", api(422, true), "NgrokRejected", true),
            (
                "401 from ngrok",
                api(401, true),
                "NgrokAuthenticationFailed",
                true,
            ),
            (
                "403 from ngrok",
                api(403, true),
                "NgrokAuthenticationFailed",
                true,
            ),
            (
                "404 from ngrok, unexpected",
                api(404, true),
                "NgrokRejected",
                true,
            ),
            ("409", api(409, true), "NgrokUnexpectedResponse", false),
            ("302", api(302, false), "NgrokUnexpectedResponse", false),
            (
                "403 page not ngrok's",
                api(403, false),
                "NgrokUnexpectedResponse",
                false,
            ),
            (
                "404 page not ngrok's",
                api(404, false),
                "NgrokUnexpectedResponse",
                false,
            ),
            (
                "2xx unreadable on GET",
                unreadable("GET"),
                "NgrokUnexpectedResponse",
                false,
            ),
            (
                "2xx unreadable on POST",
                unreadable("POST"),
                "NgrokUnknownOutcome",
                false,
            ),
            ("408", api(408, false), "NgrokUnavailable", false),
            ("429", api(429, true), "NgrokUnavailable", false),
            ("503", api(503, false), "NgrokUnavailable", false),
        ];
        for (row, client_error, reason, stalled) in rows {
            let error = Error::from(client_error);
            assert_eq!(error.reason(), reason, "{row}");
            assert_eq!(error.is_stalled(), stalled, "{row}");
        }
    }

    /// Reasons are the variants' names, but for the few written out as overrides.
    #[test]
    fn reasons_are_variant_names_with_their_overrides() {
        let rows = [
            (Error::ApiKeyMissing, "ApiKeyMissing"),
            (Error::CreateQueued, "CreateQueued"),
            (Error::OperatorKeyNotAllowed, "OperatorKeyNotAllowed"),
            (
                Error::DestinationNotReady { waiting: vec![] },
                "DestinationNotReady",
            ),
            (
                Error::InvalidAnnotation {
                    annotation: "events.ngrok.io/drift-interval",
                    problem: "is not a duration".into(),
                },
                "InvalidSpec",
            ),
            (
                Error::AdoptTargetNamedElsewhere { id: "ed_1".into() },
                "AdoptTargetInUse",
            ),
            (
                Error::NgrokAuthentication(api(401, true)),
                "NgrokAuthenticationFailed",
            ),
        ];
        for (error, reason) in rows {
            assert_eq!(error.reason(), reason, "{error:?}");
        }
    }

    #[test]
    fn remote_unreadable_names_the_object_and_keeps_retrying() {
        let error = Error::RemoteUnreadable {
            id: "ed_1".into(),
            detail: "target: unknown target type splunk".into(),
        };
        assert_eq!(error.reason(), "RemoteUnreadable");
        assert!(!error.is_stalled() && !error.waits_for_another_resource());
        let message = error.message();
        assert!(
            message.starts_with(
                "ed_1 exists in ngrok but this operator cannot read it (target: unknown target type splunk), so it is neither compared nor changed; retrying later."
            ),
            "{message}"
        );
    }

    #[test]
    fn account_changed_names_the_old_object_and_the_way_out() {
        for (cause, says) in [
            (
                PreviousAccount::Forgotten,
                "it restarted since the key changed",
            ),
            (
                PreviousAccount::KeyRefused,
                "ngrok refuses the previous key",
            ),
            (
                PreviousAccount::CannotListKeys,
                "list its account's API keys",
            ),
        ] {
            let error = Error::AccountChanged {
                old_id: "ed_old".into(),
                cause,
            };
            assert_eq!(error.reason(), "AccountChanged");
            assert!(error.is_stalled());
            let message = error.message();
            assert!(
                message.starts_with(
                    "the API key changed and ed_old is not in the new key's account, and "
                ),
                "{message}"
            );
            assert!(message.contains(says), "{message}");
            assert!(
                message.contains("Put the previous key back so that the operator can move ed_old"),
                "{message}"
            );
            assert!(message.chars().count() <= MAX_MESSAGE_CHARS);
        }
    }

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
