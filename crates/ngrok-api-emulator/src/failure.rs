//! ngrok's error answer: `{"error_code", "status_code", "msg", "details": {"operation_id"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ids::new_operation_id;

/// Header carrying the operation id on every answer.
pub(crate) const OPERATION_ID_HEADER: &str = "ngrok-operation-id";

/// An error the emulator answers with. Messages never quote request values, as a secret
/// could be among them.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub code: &'static str,
    pub msg: String,
    pub retry_after_secs: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
            retry_after_secs: None,
        }
    }

    /// 400 `ERR_NGROK_400`: a malformed request.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, msg)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "Resource not found",
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let operation_id = new_operation_id();
        let body = json!({
            "error_code": self.code,
            "status_code": self.status.as_u16(),
            "msg": self.msg,
            "details": {"operation_id": operation_id},
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&operation_id) {
            headers.insert(OPERATION_ID_HEADER, value);
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The emulator's error codes; see the table in the crate documentation.
pub mod codes {
    pub const METADATA_TOO_LONG: &str = "ERR_NGROK_100";
    pub const DESCRIPTION_TOO_LONG: &str = "ERR_NGROK_101";
    pub const MISSING_API_KEY: &str = "ERR_NGROK_205";
    pub const INVALID_API_KEY: &str = "ERR_NGROK_206";
    pub const VERSION_HEADER: &str = "ERR_NGROK_218";
    pub const RATE_LIMITED: &str = "ERR_NGROK_226";
    pub const INVALID_REQUEST: &str = "ERR_NGROK_400";
    pub const NOT_FOUND: &str = "ERR_NGROK_404";
    pub const METHOD_NOT_ALLOWED: &str = "ERR_NGROK_405";
    pub const INTERNAL: &str = "ERR_NGROK_500";
    pub const BAD_GATEWAY: &str = "ERR_NGROK_502";
    pub const UNAVAILABLE: &str = "ERR_NGROK_503";
    pub const INVALID_TARGET: &str = "ERR_NGROK_7800";
    pub const INVALID_FORMAT: &str = "ERR_NGROK_7801";
    pub const DESTINATION_IN_USE: &str = "ERR_NGROK_7802";
    pub const UNKNOWN_DESTINATION: &str = "ERR_NGROK_7803";
    pub const SOURCE_FIELDS_NOT_ALLOWED: &str = "ERR_NGROK_5401";
    pub const SOURCE_FILTER_NOT_ALLOWED: &str = "ERR_NGROK_5402";
    pub const INVALID_SOURCE_FILTER: &str = "ERR_NGROK_5404";
    pub const INVALID_EVENT_FIELD: &str = "ERR_NGROK_5405";
}
