//! ngrok accounts: one API client, one request budget (a rate limiter whose tokens are
//! handed out fairly across namespaces, [`crate::fairness::FairBudget`]) and one view of the
//! remote state per API key, shared by every resource that uses that key. Every account's
//! client sends through one HTTP transport (one connection pool, one TLS configuration), and
//! each account holds its key once.
//!
//! The view is one listing per kind of object ([`Account::listing`]: all destinations, all
//! subscriptions, ceil(N/100) calls each), refreshed at most once per drift pass and shared by
//! every resource of the account, so that checking N resources for drift costs a handful of list
//! calls instead of N GETs.

mod identity;
mod listing;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use ngrok_api::{Kind, Secret};
use sha2::{Digest, Sha256};

pub use identity::{
    AccountChange, Identity, KnownIdentity, account_change, key_fingerprint, same_account,
};
use listing::Listings;
pub use listing::{Lookup, Snapshot};

/// How long an account's identity (its API key ids) is reused before it is listed again. Keys
/// change rarely, and only a change of a resource's key asks for it.
pub const IDENTITY_TTL: Duration = Duration::from_secs(300);

/// Builds the client configuration for an API key (base URL, rate limit, timeouts, metrics).
pub type ConfigureClient = Arc<dyn Fn(Secret) -> ngrok_api::ClientConfig + Send + Sync>;

/// Every account the operator talks to. Cheap to clone: clones share the accounts.
///
/// An account lives as long as a resource uses it: the map holds it weakly, and each resource's
/// last reconcile holds it strongly (`reconcile::Memory::last_account`), so an account that no
/// resource uses any more (a rotated or deleted key) goes with its client, limiter and listings.
/// Only the operator-wide key's account is kept for the life of the process.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    configure: ConfigureClient,
    /// The HTTP transport of every account's client, made with the first account (the
    /// configuration differs only by key, which the transport does not hold).
    transport: OnceLock<ngrok_api::HttpTransport>,
    by_key_hash: Mutex<HashMap<[u8; 32], Weak<Account>>>,
    /// The operator-wide key and its account; replaced when the key file changes.
    operator: Mutex<Option<(Secret, Arc<Account>)>>,
    /// Bumped at each change of the operator-wide key.
    rotations: tokio::sync::watch::Sender<u64>,
}

impl Accounts {
    /// `operator_key` serves resources without `spec.apiKeyRef`.
    pub fn new(operator_key: Option<Secret>, configure: ConfigureClient) -> Self {
        let accounts = Self {
            inner: Arc::new(Inner {
                configure,
                transport: OnceLock::new(),
                by_key_hash: Mutex::default(),
                operator: Mutex::default(),
                rotations: tokio::sync::watch::Sender::new(0),
            }),
        };
        accounts.set_operator_key(operator_key);
        accounts
    }

    /// The operator-wide API key, if it has one.
    pub fn operator_key(&self) -> Option<Secret> {
        self.operator().map(|(key, _)| key)
    }

    fn operator(&self) -> Option<(Secret, Arc<Account>)> {
        self.inner.operator.lock().expect("accounts lock").clone()
    }

    /// Replaces the operator-wide key (a rotated key file). Returns whether it changed; if so,
    /// [`Accounts::rotations`] tells the controllers, which reconcile the resources that use it.
    pub fn set_operator_key(&self, key: Option<Secret>) -> bool {
        let unchanged = match (self.operator_key(), &key) {
            (Some(old), Some(new)) => old.expose() == new.expose(),
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return false;
        }
        // A key the client cannot be built with is kept out (its resources report it).
        let operator = key.and_then(|key| self.get(&key).ok().map(|account| (key, account)));
        *self.inner.operator.lock().expect("accounts lock") = operator;
        self.inner.rotations.send_modify(|n| *n += 1);
        true
    }

    /// Changes whenever the operator-wide key changes.
    pub fn rotations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.rotations.subscribe()
    }

    /// The account of an API key, created on first use and shared while anything holds it.
    pub fn get(&self, api_key: &Secret) -> ngrok_api::Result<Arc<Account>> {
        let key_hash = key_hash(api_key);
        let mut accounts = self.inner.by_key_hash.lock().expect("accounts lock");
        if let Some(account) = accounts.get(&key_hash).and_then(Weak::upgrade) {
            return Ok(account);
        }
        let mut config = (self.inner.configure)(api_key.clone());
        if config.budget.is_none() {
            // The account's budget, shared by every kind, handed out fairly across namespaces.
            config.budget =
                ngrok_api::Gcra::new(config.rate_limit_per_minute, config.rate_limit_burst)
                    .map(|gcra| Arc::new(crate::fairness::FairBudget::new(gcra)) as _);
        }
        let transport = match self.inner.transport.get() {
            Some(transport) => transport.clone(),
            None => {
                let transport = ngrok_api::http_transport(&config)?;
                self.inner.transport.get_or_init(|| transport).clone()
            }
        };
        let account = Arc::new(Account::new(ngrok_api::Client::with_transport(
            config, transport,
        )?));
        // Creating an account is rare; dropping the dead entries then keeps the map as small
        // as the set of keys in use.
        accounts.retain(|_, account| account.strong_count() > 0);
        accounts.insert(key_hash, Arc::downgrade(&account));
        Ok(account)
    }

    /// Keeps the operator-wide key equal to the contents of `path`, read every `every`: a
    /// mounted Secret is updated in place by the kubelet (an atomic symlink swap), so polling
    /// sees every rotation without a restart. A file that cannot be read keeps the current key.
    pub async fn follow_key_file(self, path: std::path::PathBuf, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => {
                    let key = crate::secrets::api_key_from(&Secret::new(text));
                    let key = (!key.expose().is_empty()).then_some(key);
                    if self.set_operator_key(key) {
                        tracing::info!(file = %path.display(), "read a new operator-wide API key");
                    }
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot read the API key file; keeping the current key")
                }
            }
        }
    }

    /// How many accounts are alive (for tests and the benchmark).
    pub fn live(&self) -> usize {
        let accounts = self.inner.by_key_hash.lock().expect("accounts lock");
        accounts.values().filter(|a| a.strong_count() > 0).count()
    }
}

fn key_hash(api_key: &Secret) -> [u8; 32] {
    Sha256::digest(api_key.expose().as_bytes()).into()
}

/// One ngrok account.
pub struct Account {
    /// The account's client; its configuration holds the account's one copy of the key.
    pub client: ngrok_api::Client,
    /// The latest listing of each kind ([`Account::listing`]).
    listings: Listings,
    /// Fingerprints with a create in flight in this process (see `reconcile::create`).
    creating: Mutex<HashSet<String>>,
    /// When each object (by id) was last written or seen matching its resource.
    verified: Mutex<HashMap<String, Instant>>,
    /// When the next drift pass of this account is due, so that all its resources requeue to
    /// the same moment and share one listing.
    next_pass: Mutex<Option<Instant>>,
    /// See [`Account::key_fingerprint`].
    key_fingerprint: String,
    /// The latest identity and when it was listed. Single flight, like the listings.
    identity: tokio::sync::Mutex<Option<(Instant, Arc<Identity>)>>,
}

impl Account {
    fn new(client: ngrok_api::Client) -> Self {
        Self {
            key_fingerprint: key_fingerprint(&client.config().api_key),
            client,
            listings: Listings::default(),
            creating: Mutex::default(),
            verified: Mutex::default(),
            next_pass: Mutex::default(),
            identity: tokio::sync::Mutex::default(),
        }
    }

    /// The account's API key (the key of the secrets hash).
    pub fn api_key(&self) -> &Secret {
        &self.client.config().api_key
    }

    /// Which key this account is, as a short non-reversible name ([`key_fingerprint`]): what a
    /// status may record to notice later that a resource's key changed.
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// The ids of the account's API keys ([`Identity`]), listed at most every
    /// [`IDENTITY_TTL`]. Compare two with [`same_account`]; sort a failure with
    /// [`KnownIdentity::from_result`].
    pub async fn identity(&self) -> ngrok_api::Result<Arc<Identity>> {
        let mut latest = self.identity.lock().await;
        if let Some((at, identity)) = latest.as_ref()
            && at.elapsed() < IDENTITY_TTL
        {
            return Ok(identity.clone());
        }
        let listed_at = Instant::now();
        let identity = Arc::new(Identity::from_ids(self.client.list_api_key_ids().await?));
        *latest = Some((listed_at, identity.clone()));
        Ok(identity)
    }

    /// All objects of kind `K` in the account, from a listing that started after `after` (any
    /// listing when `None`), made now if the latest one is older. One listing per kind, shared
    /// by every resource of the account; concurrent callers wait for one listing instead of
    /// each making one.
    pub async fn listing<K: Kind>(
        &self,
        after: Option<Instant>,
    ) -> ngrok_api::Result<Arc<Snapshot<K>>> {
        self.listings
            .of::<K>()
            .after(
                after,
                || self.client.list::<K>(),
                |object| K::id_of(object).to_owned(),
            )
            .await
    }

    /// Records that object `id` was just written, or seen matching its resource.
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

    /// Forgets a deleted object.
    pub fn forget(&self, id: &str) {
        self.verified.lock().expect("verified lock").remove(id);
    }

    /// Claims the right to create an object with this fingerprint in this process; `None`
    /// while another create of the same content is under way. Fingerprints of different kinds
    /// are different hashes, so one set serves every kind.
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

impl CreateGuard {
    /// Whether this guard holds the right to create `fingerprint` in `account`.
    pub fn covers(&self, account: &Arc<Account>, fingerprint: &str) -> bool {
        Arc::ptr_eq(&self.account, account) && self.fingerprint == fingerprint
    }
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

#[cfg(test)]
mod tests {
    use ngrok_api::types::{EventDestination, EventSubscription};
    use ngrok_api_emulator::{Emulator, EmulatorHandle};

    use super::*;

    fn accounts_of(emulator: &EmulatorHandle) -> Accounts {
        let base_url = emulator.base_url();
        Accounts::new(
            None,
            Arc::new(move |key| {
                let mut config = ngrok_api::ClientConfig::new(key)
                    .with_base_url(&base_url)
                    .unwrap();
                config.rate_limit_per_minute = 0;
                config
            }),
        )
    }

    /// Two keys of one account share an identity, another account's differs, and the
    /// identity is listed once per [`IDENTITY_TTL`].
    #[tokio::test]
    async fn identities_tell_a_rotation_from_a_move() {
        let emulator = Emulator::builder()
            .api_key("a-1")
            .second_key("a-1", "a-2")
            .account_key("b-1")
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .unwrap();
        let accounts = accounts_of(&emulator);
        let account = |key: &str| accounts.get(&Secret::new(key)).unwrap();
        let (a1, a2, b1) = (account("a-1"), account("a-2"), account("b-1"));
        let identity = |account: Arc<Account>| async move { account.identity().await.unwrap() };
        let (ia1, ia2, ib1) = (
            identity(a1.clone()).await,
            identity(a2.clone()).await,
            identity(b1.clone()).await,
        );
        assert!(same_account(&ia1, &ia2));
        assert!(!same_account(&ia1, &ib1));
        assert_eq!(
            account_change(
                Some(&KnownIdentity::Known(ia1.clone())),
                &KnownIdentity::Known(ib1)
            ),
            AccountChange::OtherAccount
        );
        identity(a1.clone()).await;
        assert_eq!(emulator.count("GET", "/api_keys"), 3, "cached");

        assert_ne!(a1.key_fingerprint(), a2.key_fingerprint());
        assert!(!a1.key_fingerprint().contains("a-1"));

        // A revoked previous key: the engine cannot ask its account (fresh accounts, no cache).
        emulator.revoke_key("a-1");
        let fresh = accounts_of(&emulator);
        let revoked = fresh.get(&Secret::new("a-1")).unwrap();
        assert_eq!(
            KnownIdentity::from_result(revoked.identity().await).unwrap(),
            KnownIdentity::KeyRefused
        );
    }

    /// Accounts of different keys send through one connection pool, and each holds its key
    /// once: the account's, its client's configuration and the caller's are one value.
    #[tokio::test]
    async fn accounts_share_one_transport_and_hold_their_key_once() {
        let emulator = Emulator::builder()
            .api_key("a-1")
            .account_key("b-1")
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .unwrap();
        let accounts = accounts_of(&emulator);
        let (key_a, key_b) = (Secret::new("a-1"), Secret::new("b-1"));
        let (a, b) = (accounts.get(&key_a).unwrap(), accounts.get(&key_b).unwrap());
        assert!(!Arc::ptr_eq(&a, &b));
        for _ in 0..3 {
            a.client.list::<EventDestination>().await.unwrap();
            b.client.list::<EventDestination>().await.unwrap();
        }
        // Each request carried its own account's key (the emulator refuses others).
        assert_eq!(emulator.count("GET", "/event_destinations"), 6);
        assert!(emulator.requests().iter().all(|r| r.authorized));
        // One client per account opened one connection per account.
        assert_eq!(emulator.connections(), 1, "one pool for every account");
        assert!(std::ptr::eq(a.api_key().expose(), key_a.expose()));
        assert!(std::ptr::eq(
            a.client.config().api_key.expose(),
            a.api_key().expose()
        ));
        assert!(!format!("{:?}", a.client).contains("a-1"));
    }

    /// Each kind has its own listing, made on first use and shared until a caller asks for one
    /// that started after a moment the latest did not.
    #[tokio::test]
    async fn each_kind_has_one_shared_listing() {
        let emulator = Emulator::builder()
            .api_key("a-1")
            .rate_limit_per_minute(0)
            .spawn()
            .await
            .unwrap();
        let accounts = accounts_of(&emulator);
        let account = accounts.get(&Secret::new("a-1")).unwrap();
        let created = account
            .client
            .create::<EventDestination>(&ngrok_api::types::EventDestinationCreate::new(
                ngrok_api::types::EventTarget::Kinesis(ngrok_api::types::EventTargetKinesis {
                    auth: ngrok_api::types::AwsAuth::Role(ngrok_api::types::AwsRole {
                        role_arn: "arn:aws:iam::1:role/r".into(),
                    }),
                    stream_arn: "arn:aws:kinesis:us-east-2:1:stream/s".into(),
                }),
            ))
            .await
            .unwrap();

        let first = account.listing::<EventDestination>(None).await.unwrap();
        let again = account.listing::<EventDestination>(None).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "shared");
        assert!(first.is_complete());
        assert_eq!(
            first.lookup(&created.id),
            Lookup::Found(first.objects.get(&created.id).unwrap())
        );
        let subscriptions = account.listing::<EventSubscription>(None).await.unwrap();
        assert!(subscriptions.objects.is_empty());
        assert_eq!(emulator.count("GET", "/event_destinations"), 1);
        assert_eq!(emulator.count("GET", "/event_subscriptions"), 1);

        let fresher = account
            .listing::<EventDestination>(Some(Instant::now()))
            .await
            .unwrap();
        assert!(fresher.started > first.started);
        assert_eq!(emulator.count("GET", "/event_destinations"), 2);
        assert_eq!(emulator.count("GET", "/event_subscriptions"), 1);
    }
}
