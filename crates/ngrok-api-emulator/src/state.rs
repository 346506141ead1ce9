//! The emulator's in-memory state: stored objects, the request log, fault settings and the
//! rate-limit windows. One mutex; no lock is held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::resources::Kind;

/// Fault settings, changeable at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Delay before every API answer.
    pub latency_ms: u64,
    /// Fraction of API requests answered 500, 502 or 503 (nothing is stored).
    pub error_rate: f64,
    /// Fraction of successful creates whose connection is closed without an answer (the
    /// object *is* stored).
    pub drop_after_create_rate: f64,
    /// Requests per rolling 60 seconds per API key; beyond it 429 `ERR_NGROK_226`. 0 = off.
    pub rate_limit_per_minute: u32,
    /// A create or update whose body contains this text is refused with 400
    /// `ERR_NGROK_7800`, as ngrok refuses a target it cannot use (an ARN in a region it does
    /// not serve, say): an ngrok-side validation failure the CRD schema cannot foresee. The
    /// message quotes the top-level text field that holds the marker, if one does.
    #[serde(default)]
    pub refuse_marker: Option<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            drop_after_create_rate: 0.0,
            rate_limit_per_minute: 120,
            refuse_marker: None,
        }
    }
}

/// A partial change of [`Faults`] (`PUT /__admin/faults`): fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_create_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// An empty string clears the marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refuse_marker: Option<String>,
}

impl Faults {
    /// Applies `update`; rates must lie in `0..=1`.
    pub fn apply(&mut self, update: &FaultsUpdate) -> Result<(), String> {
        for rate in [update.error_rate, update.drop_after_create_rate]
            .into_iter()
            .flatten()
        {
            if !(0.0..=1.0).contains(&rate) {
                return Err("rates must lie between 0 and 1".into());
            }
        }
        if let Some(v) = update.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = update.error_rate {
            self.error_rate = v;
        }
        if let Some(v) = update.drop_after_create_rate {
            self.drop_after_create_rate = v;
        }
        if let Some(v) = update.rate_limit_per_minute {
            self.rate_limit_per_minute = v;
        }
        if let Some(v) = &update.refuse_marker {
            self.refuse_marker = (!v.is_empty()).then(|| v.clone());
        }
        Ok(())
    }
}

/// One API request as the emulator received it (admin requests are not recorded). The
/// `Authorization` header is not recorded; the body is, secrets included: this is a test tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Order of arrival, from 0.
    pub seq: u64,
    pub method: String,
    /// Path without query.
    pub path: String,
    pub query: Option<String>,
    /// The path with ids replaced: `/event_destinations/{id}`.
    pub route: String,
    /// Status answered; `None` while in flight or when the connection was dropped.
    pub status: Option<u16>,
    /// The body as JSON; a body that is not JSON is kept as a JSON string; `None` if empty.
    pub body: Option<Value>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub ngrok_version: Option<String>,
    /// Whether the request carried an accepted API key (of any account).
    pub authorized: bool,
}

/// Number of requests per method, route and status (`GET /__admin/counts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCount {
    pub method: String,
    pub route: String,
    /// `None` for dropped connections.
    pub status: Option<u16>,
    pub count: usize,
}

/// An ngrok account: the index of its API key in [`Shared::api_keys`]; 0 is the main
/// account (the builder's `api_key`).
pub(crate) type Account = usize;

/// A stored object and the account that owns it. The owner is never rendered: only the
/// account's own API key can see the object.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub account: Account,
    /// The normalized fields, secrets included.
    pub fields: Map<String, Value>,
    /// Put in by a test as raw JSON (see [`crate::EmulatorHandle::insert_raw_object`]): answered
    /// exactly as stored, without normalizing, so it can hold what ngrok might send one day (a
    /// target type no client knows, a `null` anywhere).
    pub raw: bool,
}

/// How the next answers to a path are spoiled (see [`ScriptedAnswer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Spoiled {
    /// The request is handled (a create stores its object), then the 2xx answer's body is cut
    /// in half: JSON that does not parse. An error answer is left alone.
    MalformedBody,
    /// `302 Found` to another host, with an empty body; the request is not handled.
    Redirect,
    /// An HTML error page with this status, as a proxy in front of ngrok answers; the request
    /// is not handled.
    ErrorPage { status: u16 },
}

/// The next `times` API requests matching `method` (any when `None`) and `path` (a request
/// path, `/event_destinations/ed_…`, or a route, `/event_destinations/{id}`) are answered
/// [`Spoiled`] (`POST /__admin/scripted_answers`). Checked after the API key, the version
/// header and the rate limit, in the order added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub path: String,
    pub times: u32,
    pub answer: Spoiled,
}

/// An API key's record, as `GET /api_keys` lists it.
#[derive(Debug, Clone)]
pub(crate) struct KeyRecord {
    /// The key itself (the bearer token); never listed.
    pub token: String,
    pub account: Account,
    /// `ak_…`, made when the emulator starts.
    pub id: String,
    pub created_at: String,
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// The accepted API keys, one per account; the main account's first.
    pub api_keys: Vec<String>,
    /// Further keys of existing accounts: (key, account).
    pub second_keys: Mutex<Vec<(String, Account)>>,
    /// Keys revoked at run time (answered as keys of no account, and no longer listed).
    pub revoked: Mutex<std::collections::HashSet<String>>,
    /// Every key of every account with its `ak_…` id; set when the emulator starts.
    pub key_records: Mutex<Vec<KeyRecord>>,
    pub initial_faults: Faults,
    /// TCP connections accepted so far.
    pub connections: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub objects: HashMap<Kind, BTreeMap<String, Stored>>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Faults,
    /// Answers still to spoil, in the order added.
    pub scripted: Vec<ScriptedAnswer>,
    windows: HashMap<String, VecDeque<Instant>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Shared {
    pub fn new(api_keys: Vec<String>, faults: Faults) -> Self {
        Self {
            api_keys,
            second_keys: Mutex::default(),
            revoked: Mutex::default(),
            key_records: Mutex::default(),
            connections: Default::default(),
            state: Mutex::new(State {
                faults: faults.clone(),
                ..State::default()
            }),
            initial_faults: faults,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the whole emulator down with a poisoned lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account whose API key `authorization` (`Bearer <key>`) carries.
    pub fn account_of_authorization(&self, authorization: Option<&str>) -> Option<Account> {
        let key = authorization?.strip_prefix("Bearer ")?;
        if self
            .revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
        {
            return None;
        }
        self.api_keys.iter().position(|k| k == key).or_else(|| {
            let second_keys = self.second_keys.lock().unwrap_or_else(|p| p.into_inner());
            second_keys.iter().find(|(k, _)| k == key).map(|(_, a)| *a)
        })
    }
}

impl Shared {
    /// The keys of `account` that are not revoked, newest id first.
    pub fn keys_of(&self, account: Account) -> Vec<KeyRecord> {
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let records = self.key_records.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<KeyRecord> = records
            .iter()
            .filter(|k| k.account == account && !revoked.contains(&k.token))
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.id.cmp(&a.id));
        keys
    }
}

impl State {
    /// Takes one use of the first scripted answer matching the request, if any.
    pub fn take_scripted(&mut self, method: &str, path: &str, route: &str) -> Option<Spoiled> {
        let index = self.scripted.iter().position(|s| {
            s.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && (s.path == path || s.path == route)
        })?;
        let scripted = &mut self.scripted[index];
        let answer = scripted.answer.clone();
        scripted.times = scripted.times.saturating_sub(1);
        if scripted.times == 0 {
            self.scripted.remove(index);
        }
        Some(answer)
    }

    pub fn collection(&mut self, kind: Kind) -> &mut BTreeMap<String, Stored> {
        self.objects.entry(kind).or_default()
    }

    /// An object of any account, by id.
    pub fn find(&self, id: &str) -> Option<&Stored> {
        self.objects.get(&Kind::of_id(id)?)?.get(id)
    }

    /// `account`'s object of `kind` with `id`; another account's object is as absent as an
    /// unknown id.
    pub fn owned(&self, kind: Kind, account: Account, id: &str) -> Option<&Stored> {
        self.objects
            .get(&kind)?
            .get(id)
            .filter(|stored| stored.account == account)
    }

    pub fn owned_mut(&mut self, kind: Kind, account: Account, id: &str) -> Option<&mut Stored> {
        self.objects
            .get_mut(&kind)?
            .get_mut(id)
            .filter(|stored| stored.account == account)
    }

    /// Counts a request against `key`'s rolling 60-second window. Returns the seconds to wait
    /// when the window is full; a refused request is not counted.
    pub fn take_rate_slot(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        let limit = self.faults.rate_limit_per_minute as usize;
        if limit == 0 {
            return Ok(());
        }
        let window = self.windows.entry(key.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= limit {
            let oldest = *window.front().expect("a full window is not empty");
            let wait = WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        window.push_back(now);
        Ok(())
    }

    pub fn reset(&mut self, faults: Faults) {
        *self = State {
            faults,
            ..State::default()
        };
    }

    pub fn counts(&self) -> Vec<RouteCount> {
        let mut counts: BTreeMap<(String, String, Option<u16>), usize> = BTreeMap::new();
        for r in &self.requests {
            *counts
                .entry((r.method.clone(), r.route.clone(), r.status))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((method, route, status), count)| RouteCount {
                method,
                route,
                status,
                count,
            })
            .collect()
    }
}
