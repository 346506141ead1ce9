//! A typed client of ngrok's REST API, for event destinations and event subscriptions.
//!
//! Every call is written once for all kinds of object: a kind is the type of its objects as
//! ngrok returns them, which implements [`Kind`] (its path, its create and update bodies);
//! the call names it, `client.create::<EventDestination>(&body)`.
//!
//! ```no_run
//! # async fn demo() -> ngrok_api::Result<()> {
//! use ngrok_api::{Client, ClientConfig, Secret};
//! use ngrok_api::types::*;
//!
//! let client = Client::new(ClientConfig::new(Secret::new("api-key")))?;
//! let created = client
//!     .create::<EventDestination>(&EventDestinationCreate::new(EventTarget::Kinesis(
//!         EventTargetKinesis {
//!             auth: AwsAuth::Role(AwsRole { role_arn: "arn:aws:iam::1:role/r".into() }),
//!             stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
//!         },
//!     )))
//!     .await?;
//! let subscription = client
//!     .create::<EventSubscription>(&EventSubscriptionCreate::new(
//!         vec![EventSourceReplace::new("ip_policy_created.v0")],
//!         vec![created.id.clone()],
//!     ))
//!     .await?;
//! let every_destination = client.list::<EventDestination>().await?;
//! assert!(every_destination.unreadable.is_empty());
//! client.delete::<EventSubscription>(&subscription.id).await?;
//! client.delete::<EventDestination>(&created.id).await?;
//! # Ok(()) }
//! ```
//!
//! Adding a kind of object is a module of [`types`] with its three types (create body, update
//! body, the object) and the object's `impl Kind`: nothing else of the client changes.
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
pub mod kind;
pub mod listing;
pub mod secret;
pub mod text;
pub mod types;
pub mod unmodeled;

pub use budget::{Budget, BudgetWait, Gcra};
pub use client::{
    CLIENT_USER_AGENT, Client, ClientConfig, DEFAULT_BASE_URL, HttpTransport, LIST_PAGE_LIMIT,
    MAX_ERROR_RESPONSE_BYTES, MAX_RESPONSE_BYTES, NGROK_VERSION, RequestObserver, http_transport,
};
pub use error::{ApiError, Error, ErrorClass, Operation, Result};
pub use fence::{Fence, FenceReason};
pub use kind::Kind;
pub use listing::{Listed, Page, Unreadable};
pub use secret::Secret;
