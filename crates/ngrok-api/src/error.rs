//! Errors of the ngrok API client: what failed, and what ngrok said. How a caller should
//! react to each (retry, give up, look before creating again) is [`ErrorClass`], decided in
//! the `class` module.
//!
//! No variant holds a request body, a header value or a response body, so an error can be
//! logged or shown in `kubectl describe` without leaking a secret.

mod class;

use std::fmt;
use std::time::Duration;

use crate::fence::FenceReason;

pub use class::{DESTINATION_IN_USE_CODE, ErrorClass};

/// The request a failure belongs to, e.g. `POST /event_destinations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// HTTP method.
    pub method: &'static str,
    /// URL path, without query.
    pub path: String,
    /// What is being operated on, as a reader says it: `"destination"`.
    pub resource: &'static str,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// An error answer from ngrok: `{"error_code", "status_code", "msg", "details": {"operation_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: u16,
    /// `ERR_NGROK_…`, when the body carried one.
    pub error_code: Option<String>,
    /// ngrok's message, or the HTTP reason phrase when the body was not an ngrok error.
    pub msg: String,
    /// `details.operation_id`, else the `ngrok-operation-id` header.
    pub operation_id: Option<String>,
    /// The `Retry-After` delay, when the response had one (seconds form).
    pub retry_after: Option<Duration>,
    /// The request that failed.
    pub operation: Operation,
    /// Whether the body was ngrok's error object (JSON with `error_code`, `status_code` or
    /// `msg`). A 4xx without it came from something in front of ngrok (a proxy, a captive
    /// portal, a wrong base URL) and says nothing about the request.
    pub ngrok_body: bool,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = self.operation.resource;
        match self.status {
            429 => write!(f, "ngrok rate-limited the {resource} request: ")?,
            500.. => write!(f, "ngrok failed on the {resource} request: ")?,
            300..=399 => write!(
                f,
                "ngrok answered the {resource} request with a redirect, which the client does not follow: "
            )?,
            _ if !self.ngrok_body => write!(
                f,
                "the {resource} request got an answer that is not ngrok's (a proxy or a wrong base URL?): "
            )?,
            _ => write!(f, "ngrok rejected the {resource}: ")?,
        }
        match &self.error_code {
            Some(code) => write!(f, "{code}: {}", self.msg)?,
            None => write!(f, "HTTP {}: {}", self.status, self.msg)?,
        }
        if let Some(op) = &self.operation_id {
            write!(f, " (operation {op})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Any failure of a client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ngrok answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// No connection could be made, so nothing was sent.
    #[error("could not reach ngrok for {operation}; nothing was sent")]
    Connect {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// A non-create request timed out.
    #[error("ngrok did not answer {operation} in time")]
    Timeout {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed after a non-create request was sent.
    #[error("the connection to ngrok failed during {operation}")]
    Transport {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// A create was sent but no answer arrived (timeout or dropped connection): the object may
    /// or may not exist now. Look for it before creating it again.
    #[error(
        "the outcome of {operation} is unknown: the request was sent but no answer arrived; \
         the {} may exist", operation.resource
    )]
    UnknownOutcome {
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },
    /// ngrok answered 2xx with a body this client cannot read. On a create the object may
    /// exist (class [`ErrorClass::UnknownOutcome`]); otherwise it is transient.
    #[error("ngrok answered {operation} with an unreadable body: {detail}")]
    InvalidResponse {
        operation: Operation,
        detail: String,
    },
    /// ngrok answered 2xx with a body longer than the client reads
    /// ([`MAX_RESPONSE_BYTES`](crate::client::MAX_RESPONSE_BYTES)): left unread, like an
    /// unreadable body (on a create the object may exist; otherwise transient).
    #[error(
        "ngrok answered {operation} with a body over {limit} bytes, which the client does not read"
    )]
    ResponseTooLarge { operation: Operation, limit: usize },
    /// The client configuration is unusable (bad base URL, bad id).
    #[error("invalid ngrok client configuration: {0}")]
    Config(String),
    /// The [fence](crate::Fence) stopped the call: it was not sent (`sent: false`), or it was
    /// cut off at the deadline, answer unread (`sent: true`; a create may then exist).
    #[error("{}", fenced_message(operation, *reason, *sent))]
    Fenced {
        operation: Operation,
        reason: FenceReason,
        sent: bool,
    },
}

fn fenced_message(operation: &Operation, reason: FenceReason, sent: bool) -> String {
    let why = match reason {
        FenceReason::NotLeader => "this replica does not hold the leader lease",
        FenceReason::LeaseExpiring => "the leader lease may run out before it could finish",
    };
    match (sent, operation.method) {
        (false, _) => format!("{operation} was not sent: {why}"),
        (true, "POST") => format!(
            "{operation} was cut off unanswered ({why}): the outcome is unknown, the {} may exist",
            operation.resource
        ),
        (true, _) => format!("{operation} was cut off unanswered: {why}"),
    }
}

/// What an error carries, for a caller that needs more than its message.
impl Error {
    /// The ngrok error answer, if there was one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }

    /// HTTP status of ngrok's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        self.api_error().map(|api| api.status)
    }

    /// `ERR_NGROK_…`, if ngrok sent one.
    pub fn error_code(&self) -> Option<&str> {
        self.api_error()?.error_code.as_deref()
    }

    /// ngrok refused to delete a destination because a subscription still names it (400
    /// ngrok's operation id, if ngrok sent one.
    pub fn operation_id(&self) -> Option<&str> {
        self.api_error()?.operation_id.as_deref()
    }

    /// Why the fence stopped the call, if it did.
    pub fn fence_reason(&self) -> Option<FenceReason> {
        match self {
            Self::Fenced { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// How long ngrok asked us to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.api_error()?.retry_after
    }
}

impl From<ApiError> for Error {
    fn from(api: ApiError) -> Self {
        Self::Api(Box::new(api))
    }
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
