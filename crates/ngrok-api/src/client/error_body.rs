//! ngrok's error answers read into an [`ApiError`]: what the body says (code, message,
//! operation id) and what the headers say (`Retry-After`), each bounded to one line, because
//! it ends up in conditions, events and logs. A body that is not ngrok's (a proxy's page) is
//! told apart here, since it says nothing about the request.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::{ApiError, Operation};

/// ngrok's error body, as far as it is one.
#[derive(serde::Deserialize)]
struct ErrorBody {
    error_code: Option<String>,
    status_code: Option<serde_json::Value>,
    msg: Option<String>,
    details: Option<ErrorDetails>,
}

#[derive(serde::Deserialize)]
struct ErrorDetails {
    operation_id: Option<String>,
}

/// How much of ngrok's error message is kept (its messages are a sentence or two).
const MAX_ERROR_MSG_CHARS: usize = 512;
/// How much of an error code or operation id is kept.
const MAX_ERROR_CODE_CHARS: usize = 64;

pub(super) fn api_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    operation: Operation,
) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    // Any JSON object parses as an `ErrorBody`; ngrok's carries at least one of these.
    let ngrok_body = parsed
        .as_ref()
        .is_some_and(|b| b.error_code.is_some() || b.status_code.is_some() || b.msg.is_some());
    let (error_code, msg, body_operation_id) = match parsed {
        Some(body) => (
            body.error_code,
            body.msg,
            body.details.and_then(|d| d.operation_id),
        ),
        None => (None, None, None),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Whatever the body says ends up in conditions, events and logs: one line, bounded.
    let shown = |text: String, max| crate::text::one_line(&text, max);
    ApiError {
        status: status.as_u16(),
        error_code: error_code
            .filter(|c| !c.is_empty())
            .map(|c| shown(c, MAX_ERROR_CODE_CHARS)),
        msg: msg
            .filter(|m| !m.is_empty())
            .map(|m| shown(m, MAX_ERROR_MSG_CHARS))
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            }),
        operation_id: body_operation_id
            .or_else(|| header("ngrok-operation-id"))
            .map(|id| shown(id, MAX_ERROR_CODE_CHARS)),
        retry_after: headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs),
        operation,
        ngrok_body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_from_ngrok_is_one_bounded_line() {
        let body = serde_json::json!({
            "error_code": format!("ERR_NGROK_1\n{}", "C".repeat(1000)),
            "msg": format!("refused\nlevel=error forged=true {}", "m".repeat(100_000)),
            "details": {"operation_id": "op\r\n".repeat(1000)},
        });
        let error = api_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            Operation {
                method: "POST",
                path: "/event_destinations".into(),
                resource: "destination",
            },
        );
        let shown = error.to_string();
        assert!(!shown.contains(['\n', '\r']), "{shown:?}");
        assert!(
            shown.chars().count() < 800,
            "{} chars",
            shown.chars().count()
        );
        assert!(shown.contains("refused level=error"), "{shown}");
    }
}
