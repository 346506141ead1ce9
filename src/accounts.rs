//! ngrok accounts: one API client, one rate limiter and one view of the remote state per API
//! key, shared by every resource that uses that key.
//!
//! The view is a listing of all destinations (ceil(N/100) calls), refreshed at most once per
//! drift pass and shared by every resource of the account, so that checking N resources for
//! drift costs a handful of list calls instead of N GETs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ngrok_api::Secret;
use ngrok_api::types::EventDestination;
use sha2::{Digest, Sha256};

/// Builds the client configuration for an API key (base URL, rate limit, timeouts, metrics).
pub type ConfigureClient = Arc<dyn Fn(Secret) -> ngrok_api::ClientConfig + Send + Sync>;

/// Every account the operator talks to.
pub struct Accounts {
    default_key: Option<Secret>,
    configure: ConfigureClient,
    by_key_hash: Mutex<HashMap<[u8; 32], Arc<Account>>>,
}

impl Accounts {
    /// `default_key` serves resources without `spec.apiKeyRef`.
    pub fn new(default_key: Option<Secret>, configure: ConfigureClient) -> Self {
        Self {
            default_key,
            configure,
            by_key_hash: Mutex::default(),
        }
    }

    /// The operator-wide API key, if it has one.
    pub fn default_key(&self) -> Option<&Secret> {
        self.default_key.as_ref()
    }

    /// The account of an API key, created on first use.
    pub fn get(&self, api_key: &Secret) -> ngrok_api::Result<Arc<Account>> {
        let key_hash: [u8; 32] = Sha256::digest(api_key.expose().as_bytes()).into();
        let mut accounts = self.by_key_hash.lock().expect("accounts lock");
        if let Some(account) = accounts.get(&key_hash) {
            return Ok(account.clone());
        }
        let client = ngrok_api::Client::new((self.configure)(api_key.clone()))?;
        let account = Arc::new(Account::new(client, api_key.clone()));
        accounts.insert(key_hash, account.clone());
        Ok(account)
    }
}

/// One ngrok account.
pub struct Account {
    pub client: ngrok_api::Client,
    api_key: Secret,
    /// Single flight: concurrent callers wait for one listing instead of each making one.
    snapshot: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
    /// Fingerprints with a create in flight in this process (see `reconcile::create`).
    creating: Mutex<HashSet<String>>,
    /// When each destination was last written or seen matching its resource.
    verified: Mutex<HashMap<String, Instant>>,
    /// When the next drift pass of this account is due, so that all its resources requeue to
    /// the same moment and share one listing.
    next_pass: Mutex<Option<Instant>>,
}

/// All destinations of an account at one moment.
pub struct Snapshot {
    /// When the listing started: it reflects every write that finished before this.
    pub started: Instant,
    pub destinations: HashMap<String, EventDestination>,
}

impl Account {
    fn new(client: ngrok_api::Client, api_key: Secret) -> Self {
        Self {
            client,
            api_key,
            snapshot: tokio::sync::Mutex::new(None),
            creating: Mutex::default(),
            verified: Mutex::default(),
            next_pass: Mutex::default(),
        }
    }

    /// The account's API key (the key of the secrets hash).
    pub fn api_key(&self) -> &Secret {
        &self.api_key
    }

    /// A listing that started after `after` (any listing when `None`), made now if the latest
    /// one is older.
    pub async fn snapshot_after(&self, after: Option<Instant>) -> ngrok_api::Result<Arc<Snapshot>> {
        let mut latest = self.snapshot.lock().await;
        if let Some(snapshot) = latest.as_ref()
            && after.is_none_or(|after| snapshot.started > after)
        {
            return Ok(snapshot.clone());
        }
        let started = Instant::now();
        let destinations = self.client.list_event_destinations().await?;
        let snapshot = Arc::new(Snapshot {
            started,
            destinations: destinations
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect(),
        });
        *latest = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// Records that destination `id` was just written, or seen matching its resource.
    pub fn mark_verified(&self, id: &str) {
        self.verified
            .lock()
            .expect("verified lock")
            .insert(id.to_string(), Instant::now());
    }

    /// When `id` was last written or seen matching (`None` since this process started).
    pub fn verified_at(&self, id: &str) -> Option<Instant> {
        self.verified
            .lock()
            .expect("verified lock")
            .get(id)
            .copied()
    }

    /// Forgets a deleted destination.
    pub fn forget(&self, id: &str) {
        self.verified.lock().expect("verified lock").remove(id);
    }

    /// Claims the right to create a destination with this fingerprint in this process; `None`
    /// while another create of the same content is under way.
    pub fn begin_create(self: &Arc<Self>, fingerprint: &str) -> Option<CreateGuard> {
        let mut creating = self.creating.lock().expect("creating lock");
        creating
            .insert(fingerprint.to_string())
            .then(|| CreateGuard {
                account: self.clone(),
                fingerprint: fingerprint.to_string(),
            })
    }

    /// The moment of this account's next drift pass: every resource of the account that is in
    /// sync requeues to it, so one listing serves them all. A pass is scheduled `interval` (with
    /// ±10% jitter, so accounts do not align) after the previous one.
    pub fn next_drift_pass(&self, interval: Duration) -> Instant {
        let now = Instant::now();
        let mut next = self.next_pass.lock().expect("next pass lock");
        match *next {
            Some(at) if at > now => at,
            _ => {
                let at = now + interval.mul_f64(rand::random_range(0.9..=1.1));
                *next = Some(at);
                at
            }
        }
    }
}

/// Held while a create is in flight; releases the fingerprint when dropped.
pub struct CreateGuard {
    account: Arc<Account>,
    fingerprint: String,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        self.account
            .creating
            .lock()
            .expect("creating lock")
            .remove(&self.fingerprint);
    }
}
