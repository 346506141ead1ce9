//! A local emulator of ngrok's REST API for event destinations and event subscriptions,
//! faithful to ngrok's docs and OpenAPI spec (`openapi/ngrok-openapi.yaml`), with fault
//! injection and an admin surface for tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ngrok_api_emulator::Emulator;
//!
//! let emulator = Emulator::builder().api_key("test-key").spawn().await?; // 127.0.0.1:0
//! let base_url = emulator.base_url();
//! // ... run a client against `base_url` ...
//! for request in emulator.requests() {
//!     println!("{} {} -> {:?}: {:?}", request.method, request.path, request.status, request.body);
//! }
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - Every API request needs `Authorization: Bearer <key>` (401 otherwise) and
//!   `Ngrok-Version: 2` (400 otherwise); bodies need `Content-Type: application/json`.
//! - Accounts: `api_key` is the main ngrok account's key; each
//!   [`account_key`](EmulatorBuilder::account_key) (CLI `--extra-account-key`) adds another
//!   account, and [`second_key`](EmulatorBuilder::second_key) (CLI
//!   `--second-key ACCOUNT_KEY=KEY`) another key of an account. As at ngrok, an account sees
//!   only its own objects: another account's id
//!   answers 404 exactly as an unknown id, lists hold only the caller's objects, and a
//!   subscription may only name destinations of the caller's account (else 400
//!   `ERR_NGROK_7803`). The admin surface and [`EmulatorHandle`] see every account.
//! - Checks, in this order: latency fault, API key, version header, rate limit (a rolling
//!   60-second window per API key, so per account; refused requests do not count), injected
//!   5xx, then the handler.
//! - Bodies are validated as raw JSON (see `resources`): unknown fields and top-level `null`s
//!   are refused; exactly one target; exactly one of `role`/`creds`; required fields present
//!   and non-empty; description ≤ 255 and metadata ≤ 4096, in bytes for a destination and in
//!   characters for a subscription (as ngrok's spec says for each); `format` is `json` in any case, or
//!   empty (ngrok's SDKs send `""` by default), stored as sent, and `json` on create when omitted.
//! - Ids are `ed_`/`esb_` + 27 alphanumerics that sort by creation time; lists are newest
//!   first, paged with `before_id` and `limit` (1..=100, default 100); `next_page_uri` is set
//!   only when more objects remain. `uri` fields use the request's `Host`.
//! - Responses carry every target key (unset ones `null`) and withhold secrets (`null`).
//!   Every answer carries an `ngrok-operation-id` header; error bodies carry it too.
//! - A destination named by a subscription cannot be deleted; a subscription may only name
//!   existing destinations of its own account.
//! - `GET /api_keys` lists the caller's account's API keys (`APIKeyList` of ngrok's spec:
//!   items under `keys`, paged like the other lists, newest first): every key the account was
//!   given ([`api_key`](EmulatorBuilder::api_key), [`account_key`](EmulatorBuilder::account_key),
//!   [`second_key`](EmulatorBuilder::second_key)) except revoked ones, each with an `ak_…` id
//!   made at start-up ([`EmulatorHandle::api_key_id`]). `token` is `null`, as ngrok shows a key
//!   only in the answer to its creation. Creating, reading one, updating and deleting keys
//!   through the API are not emulated ([`EmulatorHandle::revoke_key`] deletes one). Two keys
//!   belong to the same account exactly when their listings share an id.
//!
//! # Faults beyond the rates
//!
//! - Raw objects ([`EmulatorHandle::insert_raw_object`], [`EmulatorHandle::set_raw_object`],
//!   admin `POST /__admin/raw_objects`): JSON answered by `GET` and lists exactly as stored,
//!   for objects of a shape a client does not know yet.
//! - Scripted answers ([`EmulatorHandle::script_answer`], admin
//!   `POST /__admin/scripted_answers`): the next N answers to a path are malformed JSON (after
//!   the request is handled), a `302` redirect or a proxy's HTML error page (instead of it).
//!
//! # Error codes
//!
//! Only `ERR_NGROK_226` (rate limit) is named by ngrok's API docs and `ERR_NGROK_100`
//! ("Invalid metadata length"), `ERR_NGROK_5401`, `5402`, `5404` and `5405` by ngrok's error
//! list; the others are chosen by the emulator.
//!
//! | Status | Code            | When                                                           |
//! |--------|-----------------|----------------------------------------------------------------|
//! | 400    | `ERR_NGROK_100` | `metadata` longer than 4096 bytes (characters on a subscription) |
//! | 400    | `ERR_NGROK_101` | `description` longer than 255 bytes (characters on a subscription) |
//! | 401    | `ERR_NGROK_205` | no `Authorization` header                                      |
//! | 401    | `ERR_NGROK_206` | API key of no account                                          |
//! | 400    | `ERR_NGROK_218` | `Ngrok-Version` missing or not `2`                             |
//! | 429    | `ERR_NGROK_226` | rate limit exceeded (with `Retry-After` in seconds)            |
//! | 400    | `ERR_NGROK_400` | body not a JSON object, wrong `Content-Type`, unknown or `null` field, wrong type, bad `limit` |
//! | 404    | `ERR_NGROK_404` | unknown id (another account's id too) or path                  |
//! | 405    | `ERR_NGROK_405` | method not allowed on a known path                             |
//! | 500    | `ERR_NGROK_500` | injected fault (`--error-rate`)                                |
//! | 502    | `ERR_NGROK_502` | injected fault (`--error-rate`)                                |
//! | 503    | `ERR_NGROK_503` | injected fault (`--error-rate`)                                |
//! | 400    | `ERR_NGROK_7800`| invalid target: not exactly one target, not exactly one of role/creds, required field missing or empty |
//! | 400    | `ERR_NGROK_7801`| `format` neither `json` (in any case) nor empty                |
//! | 400    | `ERR_NGROK_7802`| deleting a destination still referenced by a subscription      |
//! | 400    | `ERR_NGROK_7803`| subscription names a destination that does not exist in the caller's account |
//! | 400    | `ERR_NGROK_5401`| `sources[].fields` on an event type other than `http_request_complete`/`tcp_connection_closed` (which types take fields is a guess) |
//! | 400    | `ERR_NGROK_5402`| a non-empty `sources[].filter` on an event type other than `http_request_complete.v0`/`tcp_connection_closed.v0` (the two ngrok's filtering docs name) |
//! | 400    | `ERR_NGROK_5404`| a `sources[].filter` no CEL parser accepts: unbalanced brackets or quotes, or no `ev.` (what counts as invalid is a guess) |
//! | 400    | `ERR_NGROK_5405`| a `sources[].fields` entry that is not a dotted name |
//!
//! `ERR_NGROK_5401` and `ERR_NGROK_5405` are ngrok's documented codes and messages for these
//! misuses; `ERR_NGROK_5400` (a traffic source without fields) is documented too but not
//! enforced. Sources store and return `fields` (an extension the published spec lacks, sent by
//! ngrok's Terraform provider); a source without fields is returned without the key. They
//! store and return `filter` too (a CEL expression: in ngrok's events docs and Terraform
//! provider, not in the published spec); an empty or `null` filter is none, returned without
//! the key.

mod admin;
mod api;
mod connection;
mod failure;
mod ids;
mod resources;
mod server;
mod state;

pub use admin::{ADMIN_PREFIX, AdminClient, RawObject};
pub use failure::codes;
pub use server::{Emulator, EmulatorBuilder, EmulatorHandle};
pub use state::{Faults, FaultsUpdate, RecordedRequest, RouteCount, ScriptedAnswer, Spoiled};
