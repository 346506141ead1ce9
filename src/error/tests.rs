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
