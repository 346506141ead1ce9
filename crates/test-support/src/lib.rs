//! Test helpers shared by the workspace's crates: one of each, so that tests do not grow their
//! own copies.
//!
//! - [`Captured`]: a tracing writer that keeps everything logged, for asserting on log lines.
//! - [`creds`], [`creds_refs`], [`wire_creds`]: the JSON of AWS access-key credentials, as a
//!   resource spells them and as ngrok receives them.
//! - [`metrics`]: a reader of the Prometheus and OpenMetrics text that `/metrics` serves.

mod capture;
mod creds;
pub mod metrics;

pub use capture::Captured;
pub use creds::{creds, creds_refs, wire_creds};
