//! A typed client of ngrok's REST API, for event destinations and event subscriptions.
//!
//! ```no_run
//! # async fn demo() -> ngrok_api::Result<()> {
//! use ngrok_api::{Client, ClientConfig, Secret};
//! use ngrok_api::types::*;
//!
//! let client = Client::new(ClientConfig::new(Secret::new("api-key")))?;
//! let created = client
//!     .create_event_destination(&EventDestinationCreate::new(EventTarget::Kinesis(EventTargetKinesis {
//!         auth: AwsAuth::Role(AwsRole { role_arn: "arn:aws:iam::1:role/r".into() }),
//!         stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
//!     })))
//!     .await?;
//! let subscription = client
//!     .create_event_subscription(&EventSubscriptionCreate::new(
//!         vec![EventSourceReplace::new("ip_policy_created.v0")],
//!         vec![created.id.clone()],
//!     ))
//!     .await?;
//! client.delete_event_subscription(&subscription.id).await?;
//! client.delete_event_destination(&created.id).await?;
//! # Ok(()) }
//! ```
//!
//! Behaviour where ngrok's docs and spec are silent:
//! - A create (`POST`) is retried by the client only when no connection was made or ngrok
//!   answered 429; any other failure after sending is returned, a lost answer as
//!   [`Error::UnknownOutcome`]. A 5xx on a create is returned (classified retryable) without
//!   a client-side retry, since ngrok may have acted on it.
//! - `Retry-After` is honoured in its seconds form; the HTTP-date form is ignored.
//! - `next_page_uri` is followed on the configured origin only, so the key stays there.
//! - A list call parses each object on its own: one that does not parse is reported in
//!   [`Listed::unreadable`] (by id) and the others are returned, so that one object of a shape
//!   this client does not know cannot hide the rest of the account.
//! - With a [`Fence`] ([`ClientConfig::fence`]), every call ends by the fence's deadline:
//!   see [`fence`].
//! - A successful answer is read up to [`MAX_RESPONSE_BYTES`] (an error answer up to 64 KiB),
//!   chunk by chunk; a longer one fails the call with [`Error::ResponseTooLarge`].
//! - Clients of several accounts may share one [`HttpTransport`] ([`Client::with_transport`]):
//!   the key goes on each request, never into the transport.
//! - Which failures are the request's fault and which are not: see [`ErrorClass`].

pub mod budget;
pub mod client;
pub mod error;
pub mod fence;
pub mod listing;
pub mod secret;
pub mod text;
pub mod types;
pub mod unmodeled;

pub use budget::{Budget, BudgetWait, Gcra};
pub use client::{
    CLIENT_USER_AGENT, Client, ClientConfig, DEFAULT_BASE_URL, HttpTransport, LIST_PAGE_LIMIT,
    MAX_RESPONSE_BYTES, NGROK_VERSION, RequestObserver, http_transport,
};
pub use error::{ApiError, Error, ErrorClass, Operation, Result};
pub use fence::{Fence, FenceReason};
pub use listing::{Listed, Unreadable};
pub use secret::Secret;
