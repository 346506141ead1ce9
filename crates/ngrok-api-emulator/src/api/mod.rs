//! The emulated ngrok API: request pipeline (record → latency → auth → version → rate limit
//! → injected errors → scripted answers) and the handlers of `/event_destinations`,
//! `/event_subscriptions` and `GET /api_keys`.
//!
//! This module holds the router and what every handler shares ([`App`], [`Caller`]); the
//! parts live apart so that each can be read on its own:
//!
//! - `pipeline`: what happens to every request around its handler — recording, the checks
//!   in ngrok's order, and the injected faults;
//! - `scripted`: the spoiled answers a test scripts (malformed JSON, a redirect, a proxy's
//!   error page);
//! - `objects`: the handlers of the two object collections, one set generic over [`Kind`];
//! - `api_keys`: the handler of `GET /api_keys`;
//! - `paging`: `before_id`/`limit` and the page envelope every list shares.

mod api_keys;
mod objects;
mod paging;
mod pipeline;
mod scripted;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::routing::get;

use crate::failure::{Failure, codes};
use crate::resources::Kind;
use crate::state::{Account, Shared};

use api_keys::list_api_keys;
use objects::{create, delete, fetch, list, update};
use pipeline::pipeline;

/// Largest request body read.
const MAX_BODY_BYTES: usize = 1 << 20;

/// The account of the request's API key, put into the extensions of every request that
/// passed the gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller(pub Account);

/// What every handler sees.
pub(crate) struct App {
    pub shared: Arc<Shared>,
    /// `host:port` the server listens on, for `uri` fields when a request has no `Host`.
    pub listen_host: String,
    pub next_seq: AtomicU64,
}

impl App {
    /// Base of the `uri` fields: the address the client used to reach us (`Host`), else the
    /// listen address. Works behind a Kubernetes Service as well as on localhost.
    fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&self.listen_host);
        format!("http://{host}")
    }
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let destinations = Router::new()
        .merge(collection_routes(Kind::Destination))
        .merge(collection_routes(Kind::Subscription))
        .route("/api_keys", get(list_api_keys))
        .fallback(|| async { Failure::not_found() })
        .method_not_allowed_fallback(|| async {
            Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                codes::METHOD_NOT_ALLOWED,
                "Method not allowed.",
            )
        });
    destinations
        .layer(middleware::from_fn_with_state(app.clone(), pipeline))
        .with_state(app)
}

/// A collection's routes: list and create at `/{collection}`, read, update and delete at
/// `/{collection}/{id}`.
fn collection_routes(kind: Kind) -> Router<Arc<App>> {
    let collection = format!("/{}", kind.collection());
    Router::new()
        .route(
            &collection,
            get(move |s, c, h, q| list(kind, s, c, h, q))
                .post(move |s, c, r| create(kind, s, c, r)),
        )
        .route(
            &format!("{collection}/{{id}}"),
            get(move |s, c, h, p| fetch(kind, s, c, h, p))
                .patch(move |s, c, p, r| update(kind, s, c, p, r))
                .delete(move |s, c, p| delete(kind, s, c, p)),
        )
}
