//! The client of one account: the calls of every [`Kind`] of object, written once.
//!
//! Its parts, by concern: how it is set up (`config`), the request pipeline every call goes
//! through — rate limit, fence, send, bounded read, classify, retry (`transport`) — how
//! ngrok's error answers are read (`error_body`), and how collections are listed page by
//! page (`paging`). This module holds the calls themselves: each is a method, a path and the
//! kind's noun, handed to that pipeline.

mod config;
mod error_body;
mod paging;
mod transport;

use std::fmt;
use std::sync::Arc;

use reqwest::Method;
use reqwest::header::HeaderValue;
use url::Url;

pub use config::{
    CLIENT_USER_AGENT, ClientConfig, DEFAULT_BASE_URL, NGROK_VERSION, RequestObserver,
};
pub use paging::LIST_PAGE_LIMIT;
pub use transport::{HttpTransport, MAX_ERROR_RESPONSE_BYTES, MAX_RESPONSE_BYTES, http_transport};

use crate::budget::{Budget, Gcra};
use crate::error::{Error, Result};
use crate::kind::Kind;
use crate::listing::{Listed, Page};
use transport::authorization;

/// Path segment, items key and noun of the account's API keys, which the client lists (to tell
/// accounts apart) but never writes, so they are not a [`Kind`].
const API_KEYS: &str = "api_keys";
const API_KEYS_PAGE_ITEMS: &str = "keys";
const API_KEY: &str = "API key";

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

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// `POST /{collection}`: creates an object of kind `K`, e.g.
    /// `client.create::<EventDestination>(&body)`. Retried only when the connection failed
    /// before anything was sent or ngrok answered 429; a timeout or dropped connection after
    /// sending returns [`Error::UnknownOutcome`], a 5xx is returned without a retry: ngrok may
    /// have acted on it.
    pub async fn create<K: Kind>(&self, body: &K::Create) -> Result<K> {
        let url = self.url(&[K::COLLECTION])?;
        self.expect_body(Method::POST, url, K::NOUN, Some(body))
            .await
    }

    /// `GET /{collection}/{id}`.
    pub async fn get<K: Kind>(&self, id: &str) -> Result<K> {
        let url = self.url(&[K::COLLECTION, id])?;
        self.expect_body(Method::GET, url, K::NOUN, None::<&()>)
            .await
    }

    /// `PATCH /{collection}/{id}`, sending only the fields set in `body`.
    pub async fn update<K: Kind>(&self, id: &str, body: &K::Update) -> Result<K> {
        let url = self.url(&[K::COLLECTION, id])?;
        self.expect_body(Method::PATCH, url, K::NOUN, Some(body))
            .await
    }

    /// `DELETE /{collection}/{id}`.
    pub async fn delete<K: Kind>(&self, id: &str) -> Result<()> {
        let url = self.url(&[K::COLLECTION, id])?;
        self.request(Method::DELETE, url, K::NOUN, None::<&()>)
            .await
            .map(drop)
    }

    /// Every object of kind `K` in the account, newest first, following `next_page_uri` with
    /// pages of [`LIST_PAGE_LIMIT`]. Each object is parsed on its own: one that does not parse
    /// is in [`Listed::unreadable`], and fails nothing else.
    pub async fn list<K: Kind>(&self) -> Result<Listed<K>> {
        self.list_all(K::COLLECTION, K::PAGE_ITEMS, K::NOUN).await
    }

    /// One page of `GET /{collection}`, newest first: at most `limit` objects, older than
    /// `before_id` when it is set. Each object is parsed on its own, as in
    /// [`list`](Self::list).
    pub async fn list_page<K: Kind>(&self, before_id: Option<&str>, limit: u32) -> Result<Page<K>> {
        let mut url = self.url(&[K::COLLECTION])?;
        if let Some(before_id) = before_id {
            url.query_pairs_mut().append_pair("before_id", before_id);
        }
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        self.read_page(url, K::PAGE_ITEMS, K::NOUN).await
    }

    /// The ids (`ak_…`) of every API key of the account (`GET /api_keys`), which tell one
    /// account from another: two keys belong to the same account when their listings share
    /// an id. A listed key whose id cannot be read is left out.
    pub async fn list_api_key_ids(&self) -> Result<Vec<String>> {
        let listed = self
            .list_all::<crate::types::ApiKey>(API_KEYS, API_KEYS_PAGE_ITEMS, API_KEY)
            .await?;
        let mut ids: Vec<String> = listed.items.into_iter().map(|key| key.id).collect();
        ids.extend(listed.unreadable.into_iter().map(|key| key.id));
        Ok(ids)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventDestination, EventSubscription};

    #[test]
    fn default_rate_stays_under_ngroks_limit_in_any_minute() {
        let config = ClientConfig::new("k");
        // GCRA: `burst` requests at once, then one per 60/rate seconds.
        assert!(config.rate_limit_burst + config.rate_limit_per_minute < 120);
    }

    #[test]
    fn ids_are_path_segments() {
        let client = Client::new(
            ClientConfig::new("k")
                .with_base_url("http://h:1/prefix/")
                .unwrap(),
        )
        .unwrap();
        let url = client
            .url(&[EventDestination::COLLECTION, "../x?y"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/event_destinations/..%2Fx%3Fy"
        );
        let url = client
            .url(&[EventSubscription::COLLECTION, "esb_1/../x"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/event_subscriptions/esb_1%2F..%2Fx"
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
