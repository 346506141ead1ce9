//! The HTTP client: one request pipeline (rate limit → send → classify → retry) shared by
//! every endpoint.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::budget::{Budget, Gcra};
use crate::error::{ApiError, Error, Operation, Result};
use crate::fence::{self, Fence, FenceReason};
use crate::listing::{self, Listed};
use crate::secret::Secret;
use crate::types::{
    EventDestination, EventDestinationCreate, EventDestinationList, EventDestinationUpdate,
    EventSubscription, EventSubscriptionCreate, EventSubscriptionList, EventSubscriptionUpdate,
};

/// ngrok's API endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.ngrok.com";
/// The API version this client speaks (`Ngrok-Version` header).
pub const NGROK_VERSION: &str = "2";
/// `User-Agent` of every request: this crate's name and version, after the product using it
/// when one is set ([`ClientConfig::with_product`]), as ngrok's own SDKs do.
pub const CLIENT_USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));
/// Page size of list calls; ngrok's maximum.
pub const LIST_PAGE_LIMIT: u32 = 100;

// Collection path segment and `Operation::resource` of each resource. The resource names a
// kind, never an id, so it stays low-cardinality wherever it ends up (messages, reasons).
const DESTINATIONS: &str = "event_destinations";
const DESTINATION: &str = "destination";
const SUBSCRIPTIONS: &str = "event_subscriptions";
const SUBSCRIPTION: &str = "subscription";
const API_KEYS: &str = "api_keys";
const API_KEY: &str = "API key";

/// Settings of a [`Client`]. `Debug` is safe to log: the key is a [`Secret`].
#[derive(Clone)]
pub struct ClientConfig {
    /// API root, `https://api.ngrok.com` by default.
    pub base_url: Url,
    /// The account's API key.
    pub api_key: Secret,
    /// Whole-request timeout, per attempt.
    pub timeout: Duration,
    /// Timeout to establish a connection.
    pub connect_timeout: Duration,
    /// Requests per minute the client allows itself, shared by all clones; `0` turns the
    /// limiter off.
    ///
    /// ngrok allows 120 per rolling minute per account. The limiter is a GCRA with this rate
    /// and [`rate_limit_burst`](Self::rate_limit_burst), so any 60-second window holds at most
    /// `burst + rate` requests: the defaults give 10 + 100 = 110 < 120.
    pub rate_limit_per_minute: u32,
    /// Requests that may go out back to back before the rate applies (at least 1).
    pub rate_limit_burst: u32,
    /// What each attempt waits for instead of the client's own limiter: `None` builds a
    /// [`Gcra`] from [`rate_limit_per_minute`](Self::rate_limit_per_minute) and
    /// [`rate_limit_burst`](Self::rate_limit_burst). Shared by every client configured with it.
    pub budget: Option<Arc<dyn Budget>>,
    /// Retries after the first attempt, for failures that may be retried.
    pub max_retries: usize,
    /// First backoff delay; doubles per retry, with jitter.
    pub min_backoff: Duration,
    /// Upper bound of one backoff delay.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this ends the retries and returns the error, so the caller
    /// can requeue instead of blocking.
    pub max_retry_after: Duration,
    /// Told of every attempt (for metrics).
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// Bounds every call in time (leader election); `None`: calls are not fenced. See
    /// [`crate::fence`].
    pub fence: Option<Arc<dyn Fence>>,
    /// The `User-Agent` header: [`CLIENT_USER_AGENT`], after the product's own name and
    /// version when set with [`with_product`](Self::with_product), so that ngrok (and a
    /// person reading the account's audit log) can tell which program made a request.
    pub user_agent: String,
}

/// Told of every HTTP attempt the client makes, retries included: method, status (`None`
/// when no answer came) and time taken. Never the body, the headers or the key.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, method: &str, status: Option<u16>, elapsed: Duration);
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("budget", &self.budget.as_ref().map(|_| "set"))
            .field("max_retries", &self.max_retries)
            .field("observer", &self.observer.as_ref().map(|_| "set"))
            .field("fence", &self.fence.as_ref().map(|_| "set"))
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults for ngrok's public API.
    pub fn new(api_key: impl Into<Secret>) -> Self {
        Self {
            base_url: Url::parse(DEFAULT_BASE_URL).expect("constant URL is valid"),
            api_key: api_key.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            rate_limit_per_minute: 100,
            rate_limit_burst: 10,
            budget: None,
            max_retries: 4,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            observer: None,
            fence: None,
            user_agent: CLIENT_USER_AGENT.to_owned(),
        }
    }

    /// Names the program using this client first in the `User-Agent`: `product` is
    /// `name/version`, e.g. `ngrok-events-operator/0.1.0`.
    pub fn with_product(mut self, product: &str) -> Self {
        self.user_agent = format!("{product} {CLIENT_USER_AGENT}");
        self
    }

    /// Sets the API root, e.g. an emulator's `http://127.0.0.1:port`.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self> {
        self.base_url =
            Url::parse(base_url).map_err(|e| Error::Config(format!("base URL: {e}")))?;
        Ok(self)
    }
}

/// A client of ngrok's REST API for one account. Cheap to clone; clones share the connection
/// pool and the request budget.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    user_agent: HeaderValue,
    /// `None`: no limit.
    budget: Option<Arc<dyn Budget>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client with an HTTP transport of its own ([`http_transport`]). Fails only on
    /// an unusable configuration.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let http = http_transport(&config)?;
        Self::with_transport(config, http)
    }

    /// Builds a client that sends its requests through `http`, a transport shared with other
    /// clients (other accounts): one connection pool and one TLS configuration for all of them.
    /// `http` should come from [`http_transport`] (no redirects followed, timeouts set); the
    /// API key is not part of it but goes on each request, so any client may share it.
    pub fn with_transport(config: ClientConfig, http: HttpTransport) -> Result<Self> {
        if config.base_url.cannot_be_a_base() {
            return Err(Error::Config("base URL cannot carry a path".into()));
        }
        // Checked once here; the header itself is made for each request (see `exchange`), so
        // the key is held once, in `config`.
        authorization(&config.api_key)?;
        let user_agent = HeaderValue::try_from(config.user_agent.as_str())
            .map_err(|_| Error::Config("the User-Agent is not a valid header value".into()))?;
        let budget = config.budget.clone().or_else(|| {
            Gcra::new(config.rate_limit_per_minute, config.rate_limit_burst)
                .map(|gcra| Arc::new(gcra) as Arc<dyn Budget>)
        });
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                user_agent,
                budget,
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `POST /event_destinations`. Retried only when the connection failed before anything
    /// was sent or ngrok answered 429; a timeout or dropped connection after sending returns
    /// [`Error::UnknownOutcome`].
    pub async fn create_event_destination(
        &self,
        body: &EventDestinationCreate,
    ) -> Result<EventDestination> {
        let url = self.url(&[DESTINATIONS])?;
        self.expect_body(Method::POST, url, DESTINATION, Some(body))
            .await
    }

    /// `GET /event_destinations/{id}`.
    pub async fn get_event_destination(&self, id: &str) -> Result<EventDestination> {
        let url = self.url(&[DESTINATIONS, id])?;
        self.expect_body(Method::GET, url, DESTINATION, None::<&()>)
            .await
    }

    /// `PATCH /event_destinations/{id}`, sending only the fields set in `body`.
    pub async fn update_event_destination(
        &self,
        id: &str,
        body: &EventDestinationUpdate,
    ) -> Result<EventDestination> {
        let url = self.url(&[DESTINATIONS, id])?;
        self.expect_body(Method::PATCH, url, DESTINATION, Some(body))
            .await
    }

    /// `DELETE /event_destinations/{id}`.
    pub async fn delete_event_destination(&self, id: &str) -> Result<()> {
        let url = self.url(&[DESTINATIONS, id])?;
        self.request(Method::DELETE, url, DESTINATION, None::<&()>)
            .await
            .map(drop)
    }

    /// One page of `GET /event_destinations`, newest first.
    pub async fn list_event_destinations_page(
        &self,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<EventDestinationList> {
        let mut url = self.url(&[DESTINATIONS])?;
        if let Some(before_id) = before_id {
            url.query_pairs_mut().append_pair("before_id", before_id);
        }
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        self.expect_body(Method::GET, url, DESTINATION, None::<&()>)
            .await
    }

    /// Every event destination of the account, following `next_page_uri` with pages of 100.
    /// Each object is parsed on its own: one that does not parse is in
    /// [`Listed::unreadable`], and fails nothing else.
    pub async fn list_event_destinations(&self) -> Result<Listed<EventDestination>> {
        self.list_all(DESTINATIONS, DESTINATIONS, DESTINATION).await
    }

    /// `POST /event_subscriptions`. Retried like
    /// [`create_event_destination`](Self::create_event_destination): only when nothing was
    /// sent or ngrok answered 429.
    pub async fn create_event_subscription(
        &self,
        body: &EventSubscriptionCreate,
    ) -> Result<EventSubscription> {
        let url = self.url(&[SUBSCRIPTIONS])?;
        self.expect_body(Method::POST, url, SUBSCRIPTION, Some(body))
            .await
    }

    /// `GET /event_subscriptions/{id}`.
    pub async fn get_event_subscription(&self, id: &str) -> Result<EventSubscription> {
        let url = self.url(&[SUBSCRIPTIONS, id])?;
        self.expect_body(Method::GET, url, SUBSCRIPTION, None::<&()>)
            .await
    }

    /// `PATCH /event_subscriptions/{id}`, sending only the fields set in `body`.
    pub async fn update_event_subscription(
        &self,
        id: &str,
        body: &EventSubscriptionUpdate,
    ) -> Result<EventSubscription> {
        let url = self.url(&[SUBSCRIPTIONS, id])?;
        self.expect_body(Method::PATCH, url, SUBSCRIPTION, Some(body))
            .await
    }

    /// `DELETE /event_subscriptions/{id}`.
    pub async fn delete_event_subscription(&self, id: &str) -> Result<()> {
        let url = self.url(&[SUBSCRIPTIONS, id])?;
        self.request(Method::DELETE, url, SUBSCRIPTION, None::<&()>)
            .await
            .map(drop)
    }

    /// One page of `GET /event_subscriptions`, newest first.
    pub async fn list_event_subscriptions_page(
        &self,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<EventSubscriptionList> {
        let mut url = self.url(&[SUBSCRIPTIONS])?;
        if let Some(before_id) = before_id {
            url.query_pairs_mut().append_pair("before_id", before_id);
        }
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        self.expect_body(Method::GET, url, SUBSCRIPTION, None::<&()>)
            .await
    }

    /// Every event subscription of the account, following `next_page_uri` with pages of 100;
    /// each object parsed on its own, as in
    /// [`list_event_destinations`](Self::list_event_destinations).
    pub async fn list_event_subscriptions(&self) -> Result<Listed<EventSubscription>> {
        self.list_all(SUBSCRIPTIONS, SUBSCRIPTIONS, SUBSCRIPTION)
            .await
    }

    /// The ids (`ak_…`) of every API key of the account (`GET /api_keys`), which tell one
    /// account from another: two keys belong to the same account when their listings share
    /// an id. A listed key whose id cannot be read is left out.
    pub async fn list_api_key_ids(&self) -> Result<Vec<String>> {
        let listed = self
            .list_all::<crate::types::ApiKey>(API_KEYS, "keys", API_KEY)
            .await?;
        let mut ids: Vec<String> = listed.items.into_iter().map(|key| key.id).collect();
        ids.extend(listed.unreadable.into_iter().map(|key| key.id));
        Ok(ids)
    }

    /// Every object of `collection`, whose pages list them under `items_key`. A page that is
    /// not a JSON object with a list there fails the call (a transient
    /// [`Error::InvalidResponse`]); an item that does not parse fails only itself.
    async fn list_all<T: DeserializeOwned>(
        &self,
        collection: &str,
        items_key: &str,
        resource: &'static str,
    ) -> Result<Listed<T>> {
        let mut url = self.url(&[collection])?;
        url.query_pairs_mut()
            .append_pair("limit", &LIST_PAGE_LIMIT.to_string());
        let mut listed = Listed::default();
        let mut visited = HashSet::new();
        loop {
            let mut page: serde_json::Map<String, serde_json::Value> = self
                .expect_body(Method::GET, url.clone(), resource, None::<&()>)
                .await?;
            let malformed = |detail: &str| Error::InvalidResponse {
                operation: operation(&Method::GET, &url, resource),
                detail: detail.to_owned(),
            };
            match page.remove(items_key) {
                Some(serde_json::Value::Array(items)) => {
                    items.into_iter().for_each(|item| listed.push(item))
                }
                None | Some(serde_json::Value::Null) => {}
                Some(_) => return Err(malformed("the page's list is not a JSON array")),
            }
            let next_page_uri = match page.remove("next_page_uri") {
                Some(serde_json::Value::String(next)) => Some(next),
                None | Some(serde_json::Value::Null) => None,
                Some(_) => return Err(malformed("next_page_uri is not a string")),
            };
            let Some(next) = next_page_uri.filter(|next| !next.is_empty()) else {
                return Ok(listed);
            };
            url = self.resolve_page_uri(&next, &url, resource)?;
            if !visited.insert(url.clone()) {
                return Err(Error::InvalidResponse {
                    operation: operation(&Method::GET, &url, resource),
                    detail: "next_page_uri repeats a page already read".into(),
                });
            }
        }
    }

    /// Follows a `next_page_uri` on the configured origin only: the API key is never sent to
    /// a host the caller did not configure (a page URI naming another host keeps its path
    /// and query, on our origin).
    fn resolve_page_uri(&self, next: &str, current: &Url, resource: &'static str) -> Result<Url> {
        let base = &self.inner.config.base_url;
        let mut next = current.join(next).map_err(|e| Error::InvalidResponse {
            operation: operation(&Method::GET, current, resource),
            detail: format!("next_page_uri is not a URL: {e}"),
        })?;
        if next.origin() != base.origin() {
            let (path, query) = (next.path().to_owned(), next.query().map(str::to_owned));
            next = base.clone();
            next.set_path(&path);
            next.set_query(query.as_deref());
        }
        Ok(next)
    }

    /// `base_url` + path segments, each percent-encoded (an id cannot add path segments).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.inner.config.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("base URL cannot carry a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn expect_body<B, T>(
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
    async fn request<B>(
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
fn authorization(api_key: &Secret) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::try_from(format!("Bearer {}", api_key.expose())).map_err(|_| {
            Error::Config("the API key contains characters not allowed in a header".into())
        })?;
    value.set_sensitive(true);
    Ok(value)
}

fn operation(method: &Method, url: &Url, resource: &'static str) -> Operation {
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

fn api_error(
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
    fn default_rate_stays_under_ngroks_limit_in_any_minute() {
        let config = ClientConfig::new("k");
        // GCRA: `burst` requests at once, then one per 60/rate seconds.
        assert!(config.rate_limit_burst + config.rate_limit_per_minute < 120);
    }

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
                resource: DESTINATION,
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

    #[test]
    fn ids_are_path_segments() {
        let client = Client::new(
            ClientConfig::new("k")
                .with_base_url("http://h:1/prefix/")
                .unwrap(),
        )
        .unwrap();
        let url = client.url(&[DESTINATIONS, "../x?y"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/event_destinations/..%2Fx%3Fy"
        );
        let url = client.url(&[SUBSCRIPTIONS, "esb_1/../x"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/event_subscriptions/esb_1%2F..%2Fx"
        );
    }

    #[test]
    fn page_uri_on_another_host_stays_on_the_configured_origin() {
        let client = Client::new(
            ClientConfig::new("k")
                .with_base_url("http://127.0.0.1:9")
                .unwrap(),
        )
        .unwrap();
        let current = client.url(&[DESTINATIONS]).unwrap();
        let next = client
            .resolve_page_uri(
                "https://evil.example/event_destinations?before_id=ed_1&limit=100",
                &current,
                DESTINATION,
            )
            .unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:9/event_destinations?before_id=ed_1&limit=100"
        );
    }

    #[test]
    fn debug_of_config_and_client_hides_the_key() {
        let config = ClientConfig::new("sk_very_secret");
        assert!(!format!("{config:?}").contains("sk_very_secret"));
        let client = Client::new(config).unwrap();
        assert!(!format!("{client:?}").contains("sk_very_secret"));
    }
}
