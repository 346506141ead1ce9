//! One kind of ngrok object, described once so that every call of the client
//! ([`Client::create`](crate::Client::create), [`get`](crate::Client::get),
//! [`update`](crate::Client::update), [`delete`](crate::Client::delete),
//! [`list`](crate::Client::list), [`list_page`](crate::Client::list_page)) is written once for
//! all kinds.
//!
//! A kind is the type of its objects as ngrok returns them (e.g.
//! [`EventDestination`](crate::types::EventDestination)): `impl Kind` for it names its create
//! and update bodies and where the kind lives in the API. Adding a kind to the client is that
//! type, its two bodies and that `impl`; the request pipeline (rate limit, retries, fence,
//! bounded answers) and the listing (paging, per-object parsing) need nothing of it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A kind of ngrok object, implemented by the object's type as ngrok returns it.
///
/// `Self` is what `GET /{COLLECTION}/{id}` answers, and what a list call parses each object
/// of a page as (an object that does not parse is reported, never fails the others: see
/// [`Listed`](crate::Listed)).
///
/// ```
/// # use ngrok_api::Kind;
/// # #[derive(serde::Deserialize)] struct Widget { id: String, uri: String, created_at: String }
/// # #[derive(serde::Serialize)] struct WidgetCreate;
/// # #[derive(serde::Serialize)] struct WidgetUpdate;
/// impl Kind for Widget {
///     type Create = WidgetCreate;
///     type Update = WidgetUpdate;
///     const COLLECTION: &'static str = "widgets";
///     const NOUN: &'static str = "widget";
///     const ID_PREFIX: &'static str = "wdg_";
///     fn id_of(widget: &Self) -> &str {
///         &widget.id
///     }
///     fn uri_of(widget: &Self) -> &str {
///         &widget.uri
///     }
///     fn created_at_of(widget: &Self) -> &str {
///         &widget.created_at
///     }
/// }
/// ```
pub trait Kind: DeserializeOwned + Send + Sync + 'static {
    /// Body of `POST /{COLLECTION}`.
    type Create: Serialize + Send + Sync;
    /// Body of `PATCH /{COLLECTION}/{id}`: only the fields to change.
    type Update: Serialize + Send + Sync;

    /// The collection's path segment, e.g. `event_destinations`.
    const COLLECTION: &'static str;
    /// The key of a list page's array of objects; ngrok names it after the collection.
    const PAGE_ITEMS: &'static str = Self::COLLECTION;
    /// How errors and messages name one object of the kind, e.g. `destination`
    /// ([`Operation::resource`](crate::Operation::resource)). It names a kind, never an id, so
    /// it stays low-cardinality wherever it ends up.
    const NOUN: &'static str;
    /// How ngrok's ids of the kind begin, e.g. `ed_`.
    const ID_PREFIX: &'static str;

    /// The object's id. An associated function, not a method, so that it never competes with
    /// a field or another trait's `id()` at a call site.
    fn id_of(object: &Self) -> &str;
    /// The object's URI (every ngrok object has one).
    fn uri_of(object: &Self) -> &str;
    /// When ngrok created the object (RFC 3339), as ngrok says.
    fn created_at_of(object: &Self) -> &str;
}
