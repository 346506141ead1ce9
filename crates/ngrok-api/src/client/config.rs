//! How a [`Client`](super::Client) is set up: where it sends, with which key, how fast and
//! how patiently, and who is told of each attempt.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::budget::Budget;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::secret::Secret;

/// ngrok's API endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.ngrok.com";
/// The API version this client speaks (`Ngrok-Version` header).
pub const NGROK_VERSION: &str = "2";
/// `User-Agent` of every request: this crate's name and version, after the product using it
/// when one is set ([`ClientConfig::with_product`]), as ngrok's own SDKs do.
pub const CLIENT_USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));

/// Settings of a [`Client`](super::Client). `Debug` is safe to log: the key is a [`Secret`].
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
    /// [`Gcra`](crate::Gcra) from [`rate_limit_per_minute`](Self::rate_limit_per_minute) and
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
