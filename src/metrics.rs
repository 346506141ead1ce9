//! Prometheus metrics of the operator.
//!
//! Metrics are [prometheus-client] families under the `ngrok_events_operator_` prefix. Labels
//! never name a single object (no `namespace`/`name` label): their cardinality is bounded by the
//! number of kinds, error reasons, HTTP methods and states, not by the number of resources.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

mod families;
mod resources;
#[cfg(test)]
mod tests;

use families::{
    EventLabels, HistogramFamily, KindLabels, MethodLabels, ReconcileLabels, RequestLabels,
    first_ready_histogram, ngrok_request_histogram, reconcile_histogram,
};
pub use resources::ResourceState;
use resources::{ResourceStates, ResourceStatesCollector};

/// Prefix of every metric family of the operator.
pub const METRICS_PREFIX: &str = "ngrok_events_operator";

/// The operator's metrics. Cheap to clone (an `Arc` inside); every clone records into the same
/// families.
///
/// Create it with [`Metrics::register`] on the registry `/metrics` serves (so other components
/// can add their own families to the same registry), or with [`Metrics::new`] for a registry of
/// its own.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<MetricFamilies>,
}

struct MetricFamilies {
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: HistogramFamily<KindLabels>,
    ngrok_requests: Family<RequestLabels, Counter>,
    ngrok_request_duration: HistogramFamily<MethodLabels>,
    time_to_first_ready: HistogramFamily<KindLabels>,
    drift_checks: Family<KindLabels, Counter>,
    leader: Gauge,
    events: Family<EventLabels, Counter>,
    resource_states: Arc<ResourceStates>,
    admission_waiters: Family<KindLabels, Gauge>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A new registry holding only the operator's metrics.
    pub fn new() -> (Metrics, Registry) {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        (metrics, registry)
    }

    /// Registers the operator's metric families in `registry`, under the
    /// `ngrok_events_operator_` prefix. Call it once per registry: families of the same name
    /// registered twice would be encoded twice.
    pub fn register(registry: &mut Registry) -> Metrics {
        let registry = registry.sub_registry_with_prefix(METRICS_PREFIX);
        let inner = MetricFamilies {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            ngrok_requests: Family::default(),
            ngrok_request_duration: Family::new_with_constructor(ngrok_request_histogram),
            time_to_first_ready: Family::new_with_constructor(first_ready_histogram),
            drift_checks: Family::default(),
            leader: Gauge::default(),
            events: Family::default(),
            resource_states: Arc::default(),
            admission_waiters: Family::default(),
        };
        registry.register(
            "reconciles",
            "Reconciliations by kind and result (`success` or the error reason)",
            inner.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of one reconciliation",
            Unit::Seconds,
            inner.reconcile_duration.clone(),
        );
        registry.register(
            "ngrok_requests",
            "Requests to the ngrok API by method and status class (`transport_error`: no response)",
            inner.ngrok_requests.clone(),
        );
        registry.register_with_unit(
            "ngrok_request_duration",
            "Duration of one request to the ngrok API, including failed ones",
            Unit::Seconds,
            inner.ngrok_request_duration.clone(),
        );
        registry.register_with_unit(
            "time_to_first_ready",
            "Time from a resource's creation to its first Ready condition",
            Unit::Seconds,
            inner.time_to_first_ready.clone(),
        );
        registry.register(
            "drift_checks",
            "Resources compared with ngrok on a drift check: the account's shared listing, or one GET on a resource's own drift-interval",
            inner.drift_checks.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease, else 0",
            inner.leader.clone(),
        );
        registry.register(
            "events",
            "Kubernetes Events published, by kind of the involved object and reason",
            inner.events.clone(),
        );
        registry.register(
            "admission_waiters",
            "Reconciles waiting for a work slot of their kind (--concurrency), served round-robin across namespaces",
            inner.admission_waiters.clone(),
        );
        registry.register(
            "ngrok_budget_waiters",
            "Requests waiting for a token of their account's ngrok budget (--api-rate-limit), served round-robin across namespaces",
            crate::fairness::budget_waiters(),
        );
        registry.register_collector(Box::new(ResourceStatesCollector(
            inner.resource_states.clone(),
        )));
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Counts one reconciliation of a `kind`; `result` is `success` or the error reason in
    /// PascalCase (`SecretNotFound`, `NgrokRejected`, ...). Reasons must come from a fixed set:
    /// never pass an object name or an error message.
    pub fn reconciled(&self, kind: &'static str, result: &str) {
        self.inner
            .reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                result: result.to_string(),
            })
            .inc();
    }

    /// Records how long one reconciliation of a `kind` took.
    pub fn reconcile_duration(&self, kind: &'static str, seconds: f64) {
        self.inner
            .reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    /// Starts timing a reconciliation; the duration is recorded when the timer is dropped.
    pub fn start_reconcile(&self, kind: &'static str) -> ReconcileTimer {
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            started: Instant::now(),
        }
    }

    /// Records one request to the ngrok API: `status` is the HTTP status, `None` when no
    /// response arrived (connection error, timeout).
    pub fn ngrok_request(&self, method: &str, status: Option<u16>, elapsed: Duration) {
        let method = method.to_ascii_uppercase();
        self.inner
            .ngrok_requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                status_class: status_class(status),
            })
            .inc();
        self.inner
            .ngrok_request_duration
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the time from a resource's creation to its first Ready condition.
    pub fn first_ready(&self, kind: &'static str, seconds: f64) {
        self.inner
            .time_to_first_ready
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    /// Reports `resources{kind, state}` at scrape time: `states` is called on every scrape
    /// and returns `(state, count)` pairs, e.g.
    /// counted from a reflector store. Registering a `kind` again replaces its function.
    /// `states` must not call back into `register_resource_states`.
    pub fn register_resource_states(
        &self,
        kind: &'static str,
        states: impl Fn() -> Vec<(ResourceState, i64)> + Send + Sync + 'static,
    ) {
        let mut sources = self
            .inner
            .resource_states
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sources.insert(kind, Box::new(states));
    }

    /// Counts one resource of `kind` compared with its account's listing on a drift pass.
    pub fn drift_checked(&self, kind: &'static str) {
        self.inner
            .drift_checks
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// The gauge of reconciles of `kind` waiting for a work slot.
    pub fn admission_waiters(&self, kind: &'static str) -> Gauge {
        self.inner
            .admission_waiters
            .get_or_create(&KindLabels { kind })
            .clone()
    }

    /// Sets the `leader` gauge: whether this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Counts one Kubernetes Event published about an object of `kind`.
    pub fn event_published(&self, kind: &'static str, reason: &str) {
        self.inner
            .events
            .get_or_create(&EventLabels {
                kind,
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// `2xx` ... `5xx`, or `transport_error` when there was no HTTP response.
fn status_class(status: Option<u16>) -> &'static str {
    match status {
        None => "transport_error",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        // 1xx never ends a request; anything else odd counts as a server-side failure.
        Some(_) => "5xx",
    }
}

/// Receives one observation per ngrok API request (`status` is `None` when no HTTP response
/// arrived); the ngrok client calls it so that it need not know about Prometheus. It is the
/// client crate's own trait, so `Arc::new(metrics)` plugs straight into `ClientConfig::observer`.
pub use ngrok_api::RequestObserver as NgrokRequestObserver;

impl NgrokRequestObserver for Metrics {
    fn observe(&self, method: &str, status: Option<u16>, elapsed: Duration) {
        self.ngrok_request(method, status, elapsed);
    }
}

/// Times one reconciliation: records `reconcile_duration_seconds` when dropped, so every exit
/// path of a reconcile function is measured.
#[must_use = "the duration is recorded when the timer is dropped"]
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration(self.kind, self.started.elapsed().as_secs_f64());
    }
}
