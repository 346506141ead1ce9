//! The request pipeline every call goes through: the fence and the rate limit admit an
//! attempt, it is sent with the key, its answer is read within bounds, a failure is classified,
//! and whatever may be retried is, with backoff (a create only when ngrok certainly did not act
//! on it). Nothing here knows a kind of object: a call is a method, a URL and a noun.

use std::time::Instant;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error_body::api_error;
use super::{Client, ClientConfig, NGROK_VERSION};
use crate::error::{Error, Operation, Result};
use crate::fence::{self, FenceReason};
use crate::listing;
use crate::secret::Secret;

impl Client {
    /// [`request`](Self::request), and the answer parsed as a `T` (the field that does not
    /// parse named in the error).
    pub(super) async fn expect_body<B, T>(
        &self,
        method: Method,
        url: Url,
        resource: &'static str,
        body: Option<&B>,
    ) -> Result<T>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let operation = operation(&method, &url, resource);
        let bytes = self.request(method, url, resource, body).await?;
        // Where the body does not parse, as for an item of a listing: the field's path and
        // serde's message with every quoted part (which can be a value of the body) redacted.
        let invalid = |detail| Error::InvalidResponse {
            operation: operation.clone(),
            detail,
        };
        let mut body = serde_json::Deserializer::from_slice(&bytes);
        let parsed = serde_path_to_error::deserialize(&mut body)
            .map_err(|e| invalid(listing::reason(&e)))?;
        body.end()
            .map_err(|_| invalid("trailing characters after the JSON value".into()))?;
        Ok(parsed)
    }

    /// The pipeline every call goes through; returns the body of a 2xx answer.
    pub(super) async fn request<B>(
        &self,
        method: Method,
        url: Url,
        resource: &'static str,
        body: Option<&B>,
    ) -> Result<Vec<u8>>
    where
        B: Serialize + ?Sized,
    {
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| {
            Error::Config(format!(
                "request body does not serialize: {:?}",
                e.classify()
            ))
        })?;
        let config = &self.inner.config;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(config.min_backoff)
            .with_max_delay(config.max_backoff)
            .with_max_times(config.max_retries)
            .with_jitter();
        let max_retry_after = config.max_retry_after;
        let is_create = method == Method::POST;
        (|| self.attempt(&method, &url, resource, body.as_deref()))
            .retry(backoff)
            // Cut short when the fence's deadline passes; the next attempt is then refused.
            .sleep(fence::Sleep(config.fence.clone()))
            .when(|error| may_retry(is_create, error))
            .adjust(|error, delay| {
                let delay = delay?;
                match error.retry_after() {
                    Some(wait) if wait > max_retry_after => None,
                    Some(wait) => Some(wait),
                    None => Some(delay),
                }
            })
            .notify(|error, delay| {
                tracing::debug!(
                    method = %method, path = url.path(), reason = error.reason(),
                    delay_ms = delay.as_millis() as u64, "retrying ngrok API request"
                );
            })
            .await
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        resource: &'static str,
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        self.admit(method, url, resource)?;
        if let Some(budget) = &self.inner.budget {
            // Waited for as long as the fence holds, and the fence asked again after it.
            tokio::select! {
                () = budget.ready() => {}
                reason = fence::lapsed(self.inner.config.fence.clone()) => {
                    return Err(fenced(method, url, resource, reason, false));
                }
            }
            self.admit(method, url, resource)?;
        }
        let mut request = self.inner.http.request(method.clone(), url.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let started = Instant::now();
        let result = tokio::select! {
            result = self.exchange(request, method, url, resource) => result,
            reason = fence::lapsed(self.inner.config.fence.clone()) => {
                Err(fenced(method, url, resource, reason, true))
            }
        };
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        let status = match &result {
            Ok((status, _)) => {
                tracing::debug!(method = %method, path = url.path(), status, elapsed_ms, "ngrok API request succeeded");
                Some(*status)
            }
            Err(error) => {
                tracing::debug!(
                    method = %method, path = url.path(), status = error.status(), reason = error.reason(),
                    elapsed_ms, "ngrok API request failed"
                );
                error.status()
            }
        };
        if let Some(observer) = &self.inner.config.observer {
            observer.observe(method.as_str(), status, elapsed);
        }
        result.map(|(_, body)| body)
    }

    /// Whether the fence lets the request go now.
    fn admit(&self, method: &Method, url: &Url, resource: &'static str) -> Result<()> {
        let Some(fence) = self.inner.config.fence.as_deref() else {
            return Ok(());
        };
        fence::admits(fence, *method != Method::GET)
            .map_err(|reason| fenced(method, url, resource, reason, false))
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        url: &Url,
        resource: &'static str,
    ) -> Result<(u16, Vec<u8>)> {
        let operation = || operation(method, url, resource);
        let transport_error = |source: reqwest::Error| {
            classify_transport(*method == Method::POST, operation(), source)
        };
        let config = &self.inner.config;
        let request = request
            .header(AUTHORIZATION, authorization(&config.api_key)?)
            .header("ngrok-version", HeaderValue::from_static(NGROK_VERSION))
            .header(USER_AGENT, self.inner.user_agent.clone())
            .timeout(config.timeout);
        let mut response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let limit = if status.is_success() {
            MAX_RESPONSE_BYTES
        } else {
            MAX_ERROR_RESPONSE_BYTES
        };
        // Read chunk by chunk up to the bound: an answer is never held whole before its size
        // is known to be reasonable.
        let declared = response.content_length().unwrap_or(0);
        let mut bytes = Vec::with_capacity(declared.min(limit as u64) as usize);
        let mut complete = declared <= limit as u64;
        while complete && let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() + chunk.len() > limit {
                bytes.extend_from_slice(&chunk[..limit - bytes.len()]);
                complete = false;
            } else {
                bytes.extend_from_slice(&chunk);
            }
        }
        if status.is_success() {
            if !complete {
                return Err(Error::ResponseTooLarge {
                    operation: operation(),
                    limit,
                });
            }
            return Ok((status.as_u16(), bytes));
        }
        // An error answer over its bound is judged by its beginning: a body cut short does not
        // parse, so it counts as an answer that is not ngrok's (retried later).
        let headers = response.headers().clone();
        Err(api_error(status, &headers, &bytes, operation()).into())
    }
}

/// The largest successful answer the client reads. ngrok's largest is a page of 100 objects
/// (each field of which ngrok bounds: a description of 255 characters, metadata of 4 KiB, a
/// few ARNs or URLs), well under a MiB; anything longer is refused unread
/// ([`Error::ResponseTooLarge`]), so that no answer can grow the caller's memory unbounded.
pub const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// The largest error answer the client reads: ngrok's errors are a sentence or two. A longer
/// body is cut there.
pub const MAX_ERROR_RESPONSE_BYTES: usize = 64 * 1024;

/// An HTTP transport [`Client`]s may share ([`http_transport`], [`Client::with_transport`]).
pub type HttpTransport = reqwest::Client;

/// The HTTP transport of [`Client`]s: timeouts from `config`, no redirect followed (the key must
/// never follow a redirect to another host), and nothing of an account in it (the key and the
/// other headers go on each request), so one transport serves every account.
pub fn http_transport(config: &ClientConfig) -> Result<HttpTransport> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {e}")))
}

/// The `Authorization` header of a key, marked sensitive (kept out of hyper's debug output).
pub(super) fn authorization(api_key: &Secret) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {}", api_key.expose())).map_err(|_| {
            Error::Config("the API key contains characters not allowed in a header".into())
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The request a failure belongs to.
pub(super) fn operation(method: &Method, url: &Url, resource: &'static str) -> Operation {
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        _ => "OTHER",
    };
    Operation {
        method,
        path: url.path().to_owned(),
        resource,
    }
}

fn fenced(
    method: &Method,
    url: &Url,
    resource: &'static str,
    reason: FenceReason,
    sent: bool,
) -> Error {
    Error::Fenced {
        operation: operation(method, url, resource),
        reason,
        sent,
    }
}

/// A transport failure: nothing sent (connect), or, for a create, an unknown outcome.
fn classify_transport(is_create: bool, operation: Operation, source: reqwest::Error) -> Error {
    // Drop the URL: it is known from `operation` and need not be repeated in every message.
    let source = source.without_url();
    if source.is_connect() {
        Error::Connect { operation, source }
    } else if is_create {
        Error::UnknownOutcome { operation, source }
    } else if source.is_timeout() {
        Error::Timeout { operation, source }
    } else {
        Error::Transport { operation, source }
    }
}

/// Which failures the client retries itself. A create only when ngrok certainly did not act
/// on it: no connection was made, or ngrok answered 429 (rate limiting rejects a request
/// before it is handled).
fn may_retry(is_create: bool, error: &Error) -> bool {
    match error {
        Error::Connect { .. } => true,
        Error::Api(api) if api.status == 429 => true,
        // Refused or cut off by the fence: retrying within this call cannot help.
        Error::Fenced { .. } => false,
        _ if is_create => false,
        _ => error.is_retryable(),
    }
}
