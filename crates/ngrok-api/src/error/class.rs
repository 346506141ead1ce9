//! How a caller should react to an [`Error`]: the [`ErrorClass`] of each failure, and the
//! questions a reconciler asks of it (retry? refused? may a create have happened?). Kept apart
//! from the error types because this is the policy, written as one table, which the tests
//! below check row by row.

use super::{ApiError, Error};

/// What a caller should do about an [`Error`].
///
/// | Failure                                                   | Class            |
/// |-----------------------------------------------------------|------------------|
/// | 408, 429, 5xx; timeout, connection failed or lost          | `Retryable`      |
/// | 404 with ngrok's error body                               | `NotFound`       |
/// | other 4xx with ngrok's error body (401 and 403 included)  | `Terminal`       |
/// | 409; any 4xx whose body is not ngrok's (a proxy's page)   | `Transient`      |
/// | 3xx (the client follows no redirect)                      | `Transient`      |
/// | 2xx whose body does not parse, except on a create         | `Transient`      |
/// | 2xx whose body does not parse, on a create                | `UnknownOutcome` |
/// | 2xx whose body is over the bound the client reads          | as a body that does not parse |
/// | a create sent but not answered                            | `UnknownOutcome` |
/// | unusable client configuration                             | `Terminal`       |
///
/// Only `Terminal` says the request itself is wrong ([`Error::is_refusal`]); a caller may
/// remember it and not repeat the same request. Everything ngrok (or something in front of it)
/// answers outside its documented contract is `Transient`: nothing says the request is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again soon (the client already did, with backoff): 408, 429, 5xx, timeouts,
    /// connection failures.
    Retryable,
    /// The resource does not exist (404 with ngrok's error body).
    NotFound,
    /// The request itself or the API key is wrong; repeating it will not help.
    Terminal,
    /// Not the request's fault, but not worth an immediate retry either: an answer outside
    /// ngrok's contract (a redirect, a body that does not parse, an error page that is not
    /// ngrok's) or a conflict. Try again later, with backoff.
    Transient,
    /// A create may or may not have happened; find out before creating again.
    UnknownOutcome,
}

impl ApiError {
    fn class(&self) -> ErrorClass {
        match self.status {
            408 | 429 | 500.. => ErrorClass::Retryable,
            404 if self.ngrok_body => ErrorClass::NotFound,
            // A conflict is about the moment, not the request.
            409 => ErrorClass::Transient,
            400..=499 if self.ngrok_body => ErrorClass::Terminal,
            // 3xx, a 4xx that is not ngrok's, and anything else outside the contract.
            _ => ErrorClass::Transient,
        }
    }
}

/// ngrok's error code for the refused delete of a destination a subscription still names.
pub const DESTINATION_IN_USE_CODE: &str = "ERR_NGROK_7802";

impl Error {
    /// How a caller should react (the table at [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(api) => api.class(),
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => {
                ErrorClass::Retryable
            }
            Self::UnknownOutcome { .. } => ErrorClass::UnknownOutcome,
            // The create was answered 2xx, so it happened, but its id is unknown.
            Self::InvalidResponse { operation, .. } if operation.method == "POST" => {
                ErrorClass::UnknownOutcome
            }
            Self::InvalidResponse { .. } => ErrorClass::Transient,
            Self::ResponseTooLarge { operation, .. } if operation.method == "POST" => {
                ErrorClass::UnknownOutcome
            }
            Self::ResponseTooLarge { .. } => ErrorClass::Transient,
            Self::Config(_) => ErrorClass::Terminal,
            // A create cut off after sending may have happened.
            Self::Fenced {
                operation,
                sent: true,
                ..
            } if operation.method == "POST" => ErrorClass::UnknownOutcome,
            Self::Fenced { .. } => ErrorClass::Retryable,
        }
    }

    /// 408, 429, 5xx, timeouts and connection failures: the client retries these itself.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// ngrok itself refused the request (a 4xx with ngrok's error body, other than 404, 408,
    /// 409 and 429): the request or the API key is wrong, and sending it again unchanged
    /// cannot succeed. The only failures a caller may remember as "refused".
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Api(api) if api.class() == ErrorClass::Terminal)
    }

    /// Time may fix it: [`ErrorClass::Retryable`] or [`ErrorClass::Transient`].
    pub fn is_transient(&self) -> bool {
        matches!(self.class(), ErrorClass::Retryable | ErrorClass::Transient)
    }

    /// ngrok answered 404.
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    /// A create whose result is unknown.
    pub fn is_unknown_outcome(&self) -> bool {
        self.class() == ErrorClass::UnknownOutcome
    }

    /// Whether this failure of a create proves that nothing was created: only an answered
    /// refusal (4xx, 408 and 429 included: the request was not carried out) does. After anything
    /// else (5xx, no answer, a 2xx that does not parse) the create may have happened, and a
    /// caller must look for it before creating again.
    pub fn proves_nothing_created(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s))
    }

    /// A short PascalCase reason, for metrics, conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Api(api) => match api.status {
                429 => "RateLimited",
                300..=399 => "Redirected",
                500.. => "ServerError",
                _ if !api.ngrok_body => "UnexpectedAnswer",
                401 | 403 => "Unauthorized",
                404 => "NotFound",
                408 => "Timeout",
                409 => "Conflict",
                _ => "Rejected",
            },
            Self::Connect { .. } => "ConnectFailed",
            Self::Timeout { .. } => "Timeout",
            Self::Transport { .. } => "ConnectionLost",
            Self::UnknownOutcome { .. } => "UnknownOutcome",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::ResponseTooLarge { .. } => "ResponseTooLarge",
            Self::Config(_) => "InvalidConfig",
            Self::Fenced { reason, .. } => reason.as_str(),
        }
    }

    /// `ERR_NGROK_7802`): it can be deleted once no subscription does.
    pub fn is_destination_in_use(&self) -> bool {
        self.is_refusal() && self.error_code() == Some(DESTINATION_IN_USE_CODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Operation;
    use crate::fence::FenceReason;

    fn api(status: u16) -> Error {
        api_with(status, true)
    }

    fn api_with(status: u16, ngrok_body: bool) -> Error {
        ApiError {
            status,
            error_code: Some("ERR_NGROK_400".into()),
            msg: "bad description".into(),
            operation_id: Some("op_123".into()),
            retry_after: None,
            operation: Operation {
                method: "POST",
                path: "/event_destinations".into(),
                resource: "destination",
            },
            ngrok_body,
        }
        .into()
    }

    fn invalid_response(method: &'static str) -> Error {
        Error::InvalidResponse {
            operation: Operation {
                method,
                path: "/event_destinations".into(),
                resource: "destination",
            },
            detail: "Eof error at line 1 column 7".into(),
        }
    }

    fn too_large(method: &'static str) -> Error {
        Error::ResponseTooLarge {
            operation: Operation {
                method,
                path: "/event_destinations".into(),
                resource: "destination",
            },
            limit: 1024,
        }
    }

    #[test]
    fn display_reads_well_in_kubectl_describe() {
        assert_eq!(
            api(400).to_string(),
            "ngrok rejected the destination: ERR_NGROK_400: bad description (operation op_123)"
        );
    }

    #[test]
    fn classification() {
        assert!(api(429).is_retryable());
        assert!(api(503).is_retryable());
        assert!(api(404).is_not_found());
        assert_eq!(api(401).class(), ErrorClass::Terminal);
        assert_eq!(api(400).reason(), "Rejected");
        assert_eq!(api(429).reason(), "RateLimited");
    }

    /// One row per kind of failure: its class, whether it is a refusal (remembered, not
    /// repeated) and whether time may fix it.
    #[test]
    fn classification_row_by_row() {
        use ErrorClass::*;
        let rows: Vec<(&str, Error, ErrorClass, bool)> = vec![
            ("400 from ngrok", api(400), Terminal, true),
            ("401 from ngrok", api(401), Terminal, true),
            ("403 from ngrok", api(403), Terminal, true),
            ("422 from ngrok", api(422), Terminal, true),
            ("404 from ngrok", api(404), NotFound, false),
            ("408", api(408), Retryable, false),
            ("409 from ngrok", api(409), Transient, false),
            ("429", api(429), Retryable, false),
            ("500", api(500), Retryable, false),
            ("503 not ngrok's", api_with(503, false), Retryable, false),
            ("301", api_with(301, false), Transient, false),
            ("302 with a JSON body", api(302), Transient, false),
            ("307", api_with(307, false), Transient, false),
            (
                "400 page not ngrok's",
                api_with(400, false),
                Transient,
                false,
            ),
            (
                "403 page not ngrok's",
                api_with(403, false),
                Transient,
                false,
            ),
            (
                "404 page not ngrok's",
                api_with(404, false),
                Transient,
                false,
            ),
            (
                "2xx unreadable, GET",
                invalid_response("GET"),
                Transient,
                false,
            ),
            (
                "2xx unreadable, PATCH",
                invalid_response("PATCH"),
                Transient,
                false,
            ),
            (
                "2xx unreadable, POST",
                invalid_response("POST"),
                UnknownOutcome,
                false,
            ),
            ("2xx too large, GET", too_large("GET"), Transient, false),
            (
                "2xx too large, POST",
                too_large("POST"),
                UnknownOutcome,
                false,
            ),
            (
                "bad configuration",
                Error::Config("x".into()),
                Terminal,
                false,
            ),
        ];
        for (row, error, class, refusal) in rows {
            assert_eq!(error.class(), class, "{row}");
            assert_eq!(error.is_refusal(), refusal, "{row}");
            assert_eq!(
                error.is_transient(),
                matches!(class, Retryable | Transient),
                "{row}"
            );
        }
    }

    #[test]
    fn only_an_answered_refusal_proves_a_create_did_not_happen() {
        for status in [400, 404, 408, 409, 429] {
            assert!(api(status).proves_nothing_created(), "{status}");
        }
        assert!(!api(500).proves_nothing_created());
        assert!(!api(503).proves_nothing_created());
        assert!(!invalid_response("POST").proves_nothing_created());
        assert!(!too_large("POST").proves_nothing_created());
    }

    #[test]
    fn answers_outside_the_contract_do_not_read_as_refusals() {
        assert_eq!(
            api_with(302, false).to_string(),
            "ngrok answered the destination request with a redirect, which the client does not follow: ERR_NGROK_400: bad description (operation op_123)"
        );
        assert!(
            api_with(403, false)
                .to_string()
                .starts_with("the destination request got an answer that is not ngrok's"),
        );
        assert_eq!(api_with(302, false).reason(), "Redirected");
        assert_eq!(api_with(403, false).reason(), "UnexpectedAnswer");
    }

    #[test]
    fn a_fenced_create_cut_off_after_sending_has_an_unknown_outcome() {
        let fenced = |method, sent| Error::Fenced {
            operation: Operation {
                method,
                path: "/event_destinations".into(),
                resource: "destination",
            },
            reason: FenceReason::LeaseExpiring,
            sent,
        };
        assert_eq!(fenced("POST", true).class(), ErrorClass::UnknownOutcome);
        assert_eq!(fenced("POST", false).class(), ErrorClass::Retryable);
        assert_eq!(fenced("PATCH", true).class(), ErrorClass::Retryable);
        assert_eq!(fenced("POST", false).reason(), "LeaseExpiring");
        assert_eq!(
            fenced("POST", false).to_string(),
            "POST /event_destinations was not sent: the leader lease may run out before it could finish"
        );
    }
}
