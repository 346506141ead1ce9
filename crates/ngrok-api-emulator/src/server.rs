//! Starting the emulator: a hyper accept loop that can close one connection without an
//! answer (the `drop_after_create_rate` fault), and the handle tests hold.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::Service;

use crate::admin::RawObject;
use crate::admin::{self, AdminClient};
use crate::api::{self, App};
use crate::connection::ConnectionKiller;
use crate::ids::{new_id, now_rfc3339};
use crate::state::{
    Faults, FaultsUpdate, KeyRecord, RecordedRequest, RouteCount, ScriptedAnswer, Shared,
};

/// Entry point: `Emulator::builder().api_key("k").spawn().await`.
pub struct Emulator;

impl Emulator {
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Settings of an emulator to start.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    listen: SocketAddr,
    api_key: String,
    account_keys: Vec<String>,
    /// (key of an account, another key of that account)
    second_keys: Vec<(String, String)>,
    faults: Faults,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: "emulator-api-key".to_owned(),
            account_keys: Vec::new(),
            second_keys: Vec::new(),
            faults: Faults::default(),
        }
    }
}

impl EmulatorBuilder {
    /// Address to listen on; `127.0.0.1:0` (a free port) by default.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The API key of the main ngrok account (default `emulator-api-key`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// Adds another ngrok account, reached with API key `key`. Each account sees only its
    /// own objects: another account's id answers 404 as an unknown id does, lists show only
    /// the caller's objects, and a subscription may only name the caller's destinations.
    /// Call once per extra account; every key must differ from the others and from
    /// [`api_key`](Self::api_key), else [`spawn`](Self::spawn) fails.
    pub fn account_key(mut self, key: impl Into<String>) -> Self {
        self.account_keys.push(key.into());
        self
    }

    /// Gives the account reached with `account_key` (the main key, or one given to
    /// [`account_key`](Self::account_key)) another API key, `key`, as ngrok lets an account
    /// have several: both see and change the same objects.
    pub fn second_key(mut self, account_key: impl Into<String>, key: impl Into<String>) -> Self {
        self.second_keys.push((account_key.into(), key.into()));
        self
    }

    /// All fault settings at once.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.faults.latency_ms = ms;
        self
    }

    pub fn error_rate(mut self, rate: f64) -> Self {
        self.faults.error_rate = rate;
        self
    }

    pub fn drop_after_create_rate(mut self, rate: f64) -> Self {
        self.faults.drop_after_create_rate = rate;
        self
    }

    /// Refuse creates and updates whose body contains `marker` (see [`Faults::refuse_marker`]).
    pub fn refuse_marker(mut self, marker: impl Into<String>) -> Self {
        self.faults.refuse_marker = Some(marker.into());
        self
    }

    /// Requests per rolling minute per API key (default 120, 0 = off).
    pub fn rate_limit_per_minute(mut self, limit: u32) -> Self {
        self.faults.rate_limit_per_minute = limit;
        self
    }

    /// Binds and starts serving in the background of the current tokio runtime.
    pub async fn spawn(self) -> io::Result<EmulatorHandle> {
        let mut faults = Faults::default();
        let update = FaultsUpdate {
            latency_ms: Some(self.faults.latency_ms),
            error_rate: Some(self.faults.error_rate),
            drop_after_create_rate: Some(self.faults.drop_after_create_rate),
            rate_limit_per_minute: Some(self.faults.rate_limit_per_minute),
            refuse_marker: self.faults.refuse_marker.clone(),
        };
        faults
            .apply(&update)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut api_keys = vec![self.api_key];
        for key in self.account_keys {
            if api_keys.contains(&key) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "every account needs its own API key",
                ));
            }
            api_keys.push(key);
        }
        let mut second_keys = Vec::new();
        for (account_key, key) in self.second_keys {
            let account = api_keys
                .iter()
                .position(|k| *k == account_key)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "second_key names no account's key",
                    )
                })?;
            if api_keys.contains(&key) || second_keys.iter().any(|(k, _)| *k == key) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "every API key must differ from the others",
                ));
            }
            second_keys.push((key, account));
        }
        let listener = TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        // Every key gets its `ak_…` id now, in the order given, so ids sort as keys were added.
        let key_records = api_keys
            .iter()
            .enumerate()
            .map(|(account, token)| (token.clone(), account))
            .chain(second_keys.iter().cloned())
            .map(|(token, account)| KeyRecord {
                token,
                account,
                id: new_id("ak_"),
                created_at: now_rfc3339(),
            })
            .collect();
        let shared = Arc::new(Shared::new(api_keys, faults));
        *shared.second_keys.lock().unwrap_or_else(|p| p.into_inner()) = second_keys;
        *shared.key_records.lock().unwrap_or_else(|p| p.into_inner()) = key_records;
        let app = Arc::new(App {
            shared: shared.clone(),
            listen_host: addr.to_string(),
            next_seq: AtomicU64::new(0),
        });
        let router = api::router(app).merge(admin::router(shared.clone()));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, router, shared.clone(), shutdown_rx));
        tracing::info!(%addr, "ngrok API emulator listening");
        Ok(EmulatorHandle {
            addr,
            shared,
            shutdown,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    stream
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
        };
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = ConnectionKiller::default();
            let killer = kill.clone();
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(killer.clone());
                    let mut router = router.clone();
                    async move { router.call(request).await }
                });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // Dropping `connection` closes the socket without writing anything more.
            tokio::select! {
                _ = connection => {}
                _ = kill.killed() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// A running emulator. Dropping it stops the server.
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the base URL for a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many TCP connections clients opened so far (a client that shares one connection
    /// pool for many requests, or many accounts, opens few).
    pub fn connections(&self) -> u64 {
        self.shared
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The API key of the main account.
    pub fn api_key(&self) -> &str {
        &self.shared.api_keys[0]
    }

    /// The API keys of all accounts, the main account's first, then those of
    /// [`EmulatorBuilder::account_key`] in order.
    pub fn api_keys(&self) -> &[String] {
        &self.shared.api_keys
    }

    /// Revokes an API key, as deleting it in the dashboard does: from now on it is answered
    /// 401 like a key of no account.
    pub fn revoke_key(&self, key: &str) {
        self.shared
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned());
    }

    /// The `ak_…` id under which `GET /api_keys` lists `key` (listed only while not revoked).
    pub fn api_key_id(&self, key: &str) -> Option<String> {
        let records = self
            .shared
            .key_records
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        records
            .iter()
            .find(|r| r.token == key)
            .map(|r| r.id.clone())
    }

    /// Stores `object` (a JSON object) verbatim in the list of `collection`
    /// (`event_destinations` or `event_subscriptions`) of the account of `api_key`, where `GET`
    /// and list calls answer it exactly as stored, unchecked: an unknown target type, a `null`
    /// where a string belongs, an `id` that is not a string. Answers its id (the object's own
    /// string `id`, else a new one).
    pub fn insert_raw_object(
        &self,
        api_key: &str,
        collection: &str,
        object: Value,
    ) -> Result<String, String> {
        admin::insert_raw_object(
            &self.shared,
            &RawObject {
                api_key: api_key.to_owned(),
                collection: collection.to_owned(),
                object,
            },
        )
    }

    /// Replaces the stored object `id` (of whichever account) by `object`, answered as is from
    /// now on, as [`insert_raw_object`](Self::insert_raw_object); `false` if there is none. A
    /// later [`patch_object`](Self::patch_object) that validates makes it normal again.
    pub fn set_raw_object(&self, id: &str, object: serde_json::Map<String, Value>) -> bool {
        admin::set_raw_object(&self.shared, id, object)
    }

    /// Spoils the next `answer.times` answers to a path: malformed JSON, a redirect, or an
    /// error page that is not ngrok's (see [`ScriptedAnswer`]).
    pub fn script_answer(&self, answer: ScriptedAnswer) -> Result<(), String> {
        admin::script_answer(&self.shared, answer)
    }

    /// Forgets the scripted answers still to come.
    pub fn clear_scripted_answers(&self) {
        self.shared.lock().scripted.clear();
    }

    /// The API key of the account that owns the object `id`, or `None` if there is none.
    pub fn account_of(&self, id: &str) -> Option<String> {
        let state = self.shared.lock();
        let stored = state.find(id)?;
        Some(self.shared.api_keys[stored.account].clone())
    }

    /// A client of the HTTP admin surface of this emulator.
    pub fn admin_client(&self) -> AdminClient {
        AdminClient::new(self.base_url())
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Request counts by method, route (`/event_destinations/{id}`) and status.
    pub fn counts(&self) -> Vec<RouteCount> {
        self.shared.lock().counts()
    }

    /// Requests received for `method` and `route`, whatever their status.
    pub fn count(&self, method: &str, route: &str) -> usize {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|r| r.method == method && r.route == route)
            .count()
    }

    /// Current fault settings.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Changes fault settings at run time.
    pub fn set_faults(&self, update: &FaultsUpdate) -> Result<Faults, String> {
        admin::set_faults(&self.shared, update)
    }

    /// Forgets all objects, the log and rate windows; restores the start-up faults.
    pub fn reset(&self) {
        admin::reset(&self.shared);
    }

    /// A stored object of any account (secrets included), by id.
    pub fn object(&self, id: &str) -> Option<Value> {
        admin::object(&self.shared, id)
    }

    /// Ids of the stored event destinations of all accounts, oldest first.
    pub fn destination_ids(&self) -> Vec<String> {
        self.ids(crate::resources::Kind::Destination)
    }

    /// Ids of the stored event subscriptions of all accounts, oldest first.
    pub fn subscription_ids(&self) -> Vec<String> {
        self.ids(crate::resources::Kind::Subscription)
    }

    fn ids(&self, kind: crate::resources::Kind) -> Vec<String> {
        let state = self.shared.lock();
        state
            .objects
            .get(&kind)
            .map(|all| all.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Deletes an object out of band (as a person in the dashboard); `false` if absent.
    pub fn delete_object(&self, id: &str) -> bool {
        admin::delete_object(&self.shared, id)
    }

    /// Edits an object out of band with a JSON merge patch; the result must still be valid.
    /// Returns the stored object, or the reason it was refused.
    pub fn patch_object(&self, id: &str, patch: &Value) -> Result<Value, String> {
        admin::patch_object(&self.shared, id, patch).map_err(|failure| failure.msg)
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
