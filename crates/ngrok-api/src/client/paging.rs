//! Listing a collection: one page at a time, or all of them by following `next_page_uri`
//! (on the configured origin only, and never in a loop). Each object of a page is parsed on
//! its own ([`Listed`]), so that one the client cannot read costs itself only.

use std::collections::HashSet;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use super::Client;
use super::transport::operation;
use crate::error::{Error, Result};
use crate::listing::{Listed, Page};

/// Page size of list calls; ngrok's maximum.
pub const LIST_PAGE_LIMIT: u32 = 100;

impl Client {
    /// Every object of `collection`, whose pages list them under `items_key`. A page that is
    /// not a JSON object with a list there fails the call (a transient
    /// [`Error::InvalidResponse`]); an item that does not parse fails only itself.
    pub(super) async fn list_all<T: DeserializeOwned>(
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
            let page = self.read_page(url.clone(), items_key, resource).await?;
            listed.append(page.listed);
            let Some(next) = page.next_page_uri else {
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

    /// The page at `url`, its objects under `items_key`, each parsed on its own. A page that
    /// is not a JSON object, whose list is not an array or whose `next_page_uri` is not a
    /// string fails the call; an empty `next_page_uri` ends the listing like a missing one.
    pub(super) async fn read_page<T: DeserializeOwned>(
        &self,
        url: Url,
        items_key: &str,
        resource: &'static str,
    ) -> Result<Page<T>> {
        let mut page: Map<String, Value> = self
            .expect_body(Method::GET, url.clone(), resource, None::<&()>)
            .await?;
        let malformed = |detail: &str| Error::InvalidResponse {
            operation: operation(&Method::GET, &url, resource),
            detail: detail.to_owned(),
        };
        let mut listed = Listed::default();
        match page.remove(items_key) {
            Some(Value::Array(items)) => items.into_iter().for_each(|item| listed.push(item)),
            None | Some(Value::Null) => {}
            Some(_) => return Err(malformed("the page's list is not a JSON array")),
        }
        let next_page_uri = match page.remove("next_page_uri") {
            Some(Value::String(next)) => Some(next),
            None | Some(Value::Null) => None,
            Some(_) => return Err(malformed("next_page_uri is not a string")),
        };
        let uri = match page.remove("uri") {
            Some(Value::String(uri)) => uri,
            _ => String::new(),
        };
        Ok(Page {
            listed,
            uri,
            next_page_uri: next_page_uri.filter(|next| !next.is_empty()),
        })
    }

    /// Follows a `next_page_uri` on the configured origin only: the API key is never sent to
    /// a host the caller did not configure (a page URI naming another host keeps its path
    /// and query, on our origin).
    pub(super) fn resolve_page_uri(
        &self,
        next: &str,
        current: &Url,
        resource: &'static str,
    ) -> Result<Url> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;

    #[test]
    fn page_uri_on_another_host_stays_on_the_configured_origin() {
        let client = Client::new(
            ClientConfig::new("k")
                .with_base_url("http://127.0.0.1:9")
                .unwrap(),
        )
        .unwrap();
        let current = client.url(&["event_destinations"]).unwrap();
        let next = client
            .resolve_page_uri(
                "https://evil.example/event_destinations?before_id=ed_1&limit=100",
                &current,
                "destination",
            )
            .unwrap();
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:9/event_destinations?before_id=ed_1&limit=100"
        );
    }
}
