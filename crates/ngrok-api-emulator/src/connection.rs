//! Dropping one client connection on purpose (the `drop_after_create` fault).
//!
//! The server owns the connections and the API decides when to drop one; the handle they share
//! lives here so that the server depends on the API and the API on neither.

use std::sync::Arc;

use tokio::sync::Notify;

/// Closes the connection it belongs to; put into every request's extensions.
#[derive(Clone, Default)]
pub(crate) struct ConnectionKiller(Arc<Notify>);

impl ConnectionKiller {
    pub fn kill(&self) {
        // `notify_one` keeps a permit, so the kill is not lost if the connection task is
        // not waiting yet.
        self.0.notify_one();
    }

    /// Resolves once [`kill`](Self::kill) was called on this handle or a clone of it.
    pub async fn killed(&self) {
        self.0.notified().await;
    }
}
