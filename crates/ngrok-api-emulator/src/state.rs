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
    /// not serve, say): an ngrok-side validation failure the CRD schema cannot foresee.
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
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// The accepted API keys, one per account; the main account's first.
    pub api_keys: Vec<String>,
    /// Further keys of existing accounts: (key, account).
    pub second_keys: Mutex<Vec<(String, Account)>>,
    /// Keys revoked at run time (answered as keys of no account).
    pub revoked: Mutex<std::collections::HashSet<String>>,
    pub initial_faults: Faults,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub objects: HashMap<Kind, BTreeMap<String, Stored>>,
    pub requests: Vec<RecordedRequest>,
    pub faults: Faults,
    windows: HashMap<String, VecDeque<Instant>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Shared {
    pub fn new(api_keys: Vec<String>, faults: Faults) -> Self {
        Self {
            api_keys,
            second_keys: Mutex::default(),
            revoked: Mutex::default(),
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

impl State {
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
