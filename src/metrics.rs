//! Prometheus metrics of the operator.
//!
//! Metrics are [prometheus-client] families under the `ngrok_events_operator_` prefix. Labels
//! never name a single object (no `namespace`/`name` label): their cardinality is bounded by the
//! number of kinds, error reasons, HTTP methods and states, not by the number of resources.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric family of the operator.
pub const METRICS_PREFIX: &str = "ngrok_events_operator";

/// Reconcile durations: a no-op reconcile takes about a millisecond, a slow ngrok call tens of
/// seconds.
const RECONCILE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// ngrok API round trips: tens of milliseconds normally, up to the client's timeout.
const NGROK_REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Creation to first Ready: well under a second when all is in place, minutes when a Secret
/// arrives later.
const FIRST_READY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS.iter().copied())
}
fn ngrok_request_histogram() -> Histogram {
    Histogram::new(NGROK_REQUEST_BUCKETS.iter().copied())
}
fn first_ready_histogram() -> Histogram {
    Histogram::new(FIRST_READY_BUCKETS.iter().copied())
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: &'static str,
    state: &'static str,
}

/// The state a resource is counted in by `resources{kind, state}`, its `state` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceState {
    Ready,
    Reconciling,
    Stalled,
    Paused,
}

impl ResourceState {
    /// Every state, in the order the series are written.
    pub const ALL: [ResourceState; 4] = [
        ResourceState::Ready,
        ResourceState::Reconciling,
        ResourceState::Stalled,
        ResourceState::Paused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ResourceState::Ready => "ready",
            ResourceState::Reconciling => "reconciling",
            ResourceState::Stalled => "stalled",
            ResourceState::Paused => "paused",
        }
    }
}

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

type StatesFn = Box<dyn Fn() -> Vec<(ResourceState, i64)> + Send + Sync>;

/// The per-kind functions behind `resources{kind, state}`.
#[derive(Default)]
struct ResourceStates {
    sources: RwLock<HashMap<&'static str, StatesFn>>,
}

/// Encodes `resources{kind, state}` on each scrape from the registered functions.
struct ResourceStatesCollector(Arc<ResourceStates>);

impl fmt::Debug for ResourceStatesCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceStatesCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for ResourceStatesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sources = self
            .0
            .sources
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut family = encoder.encode_descriptor(
            "resources",
            "Resources by kind and state, counted at scrape time",
            None,
            MetricType::Gauge,
        )?;
        // Sorted so that consecutive scrapes list the series in the same order.
        let mut kinds: Vec<_> = sources.iter().collect();
        kinds.sort_by_key(|(kind, _)| **kind);
        for (kind, states) in kinds {
            for (state, count) in states() {
                let state = state.label();
                let labels = ResourceLabels { kind, state };
                ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use std::sync::Mutex;

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    /// The sample lines (not comments) of a scrape.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn every_family_is_encoded_with_its_labels_and_values() {
        let (metrics, registry) = Metrics::new();
        metrics.reconciled("EventDestination", "success");
        metrics.reconciled("EventDestination", "success");
        metrics.reconciled("EventDestination", "SecretNotFound");
        metrics.reconcile_duration("EventDestination", 0.002);
        {
            let _timer = metrics.start_reconcile("EventDestination");
        }
        metrics.ngrok_request("post", Some(201), Duration::from_millis(40));
        metrics.ngrok_request("GET", Some(404), Duration::from_millis(20));
        metrics.ngrok_request("GET", Some(503), Duration::from_millis(20));
        metrics.ngrok_request("GET", Some(304), Duration::from_millis(20));
        metrics.ngrok_request("PATCH", None, Duration::from_secs(10));
        metrics.first_ready("EventDestination", 1.5);
        metrics.drift_checked("EventDestination");
        metrics.set_leader(true);
        metrics.event_published("EventDestination", "Created");
        metrics.register_resource_states("EventDestination", || {
            vec![(ResourceState::Ready, 3), (ResourceState::Stalled, 1)]
        });

        let text = scrape(&registry);
        let samples = samples(&text);
        for expected in [
            r#"ngrok_events_operator_reconciles_total{kind="EventDestination",result="success"} 2"#,
            r#"ngrok_events_operator_reconciles_total{kind="EventDestination",result="SecretNotFound"} 1"#,
            r#"ngrok_events_operator_reconcile_duration_seconds_count{kind="EventDestination"} 2"#,
            r#"ngrok_events_operator_reconcile_duration_seconds_bucket{le="0.001",kind="EventDestination"} 1"#,
            r#"ngrok_events_operator_reconcile_duration_seconds_bucket{le="30.0",kind="EventDestination"} 2"#,
            r#"ngrok_events_operator_ngrok_requests_total{method="POST",status_class="2xx"} 1"#,
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="3xx"} 1"#,
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="4xx"} 1"#,
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="5xx"} 1"#,
            r#"ngrok_events_operator_ngrok_requests_total{method="PATCH",status_class="transport_error"} 1"#,
            r#"ngrok_events_operator_ngrok_request_duration_seconds_count{method="GET"} 3"#,
            r#"ngrok_events_operator_ngrok_request_duration_seconds_sum{method="PATCH"} 10.0"#,
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="2.5",kind="EventDestination"} 1"#,
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="1.0",kind="EventDestination"} 0"#,
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="600.0",kind="EventDestination"} 1"#,
            r#"ngrok_events_operator_drift_checks_total{kind="EventDestination"} 1"#,
            "ngrok_events_operator_leader 1",
            r#"ngrok_events_operator_events_total{kind="EventDestination",reason="Created"} 1"#,
            r#"ngrok_events_operator_resources{kind="EventDestination",state="ready"} 3"#,
            r#"ngrok_events_operator_resources{kind="EventDestination",state="stalled"} 1"#,
        ] {
            assert!(samples.contains(&expected), "missing {expected} in\n{text}");
        }
        for (family, kind) in [
            ("ngrok_events_operator_reconciles", "counter"),
            (
                "ngrok_events_operator_reconcile_duration_seconds",
                "histogram",
            ),
            ("ngrok_events_operator_ngrok_requests", "counter"),
            (
                "ngrok_events_operator_ngrok_request_duration_seconds",
                "histogram",
            ),
            (
                "ngrok_events_operator_time_to_first_ready_seconds",
                "histogram",
            ),
            ("ngrok_events_operator_drift_checks", "counter"),
            ("ngrok_events_operator_leader", "gauge"),
            ("ngrok_events_operator_events", "counter"),
            ("ngrok_events_operator_resources", "gauge"),
        ] {
            let line = format!("# TYPE {family} {kind}");
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));

        metrics.set_leader(false);
        assert!(samples_of(&scrape(&registry)).contains(&"ngrok_events_operator_leader 0".into()));
    }

    fn samples_of(text: &str) -> Vec<String> {
        samples(text).into_iter().map(str::to_string).collect()
    }

    #[test]
    fn no_label_names_a_single_object() {
        let (metrics, registry) = Metrics::new();
        metrics.reconciled("EventDestination", "NgrokRejected");
        metrics.reconcile_duration("EventDestination", 0.1);
        metrics.ngrok_request("DELETE", Some(204), Duration::from_millis(5));
        metrics.first_ready("EventDestination", 0.3);
        metrics.event_published("EventDestination", "Deleted");
        metrics.register_resource_states("EventDestination", || vec![(ResourceState::Ready, 1)]);

        let text = scrape(&registry);
        let mut label_names = std::collections::BTreeSet::new();
        for sample in samples(&text) {
            let Some((_, labels)) = sample.split_once('{') else {
                continue;
            };
            let labels = labels.split_once('}').unwrap().0;
            for pair in labels.split(',') {
                label_names.insert(pair.split_once('=').unwrap().0.to_string());
            }
        }
        assert_eq!(
            label_names.into_iter().collect::<Vec<_>>(),
            [
                "kind",
                "le",
                "method",
                "reason",
                "result",
                "state",
                "status_class"
            ]
        );
    }

    #[test]
    fn resource_states_are_computed_on_each_scrape() {
        let (metrics, registry) = Metrics::new();
        let count = Arc::new(Mutex::new(1));
        let source = count.clone();
        metrics.register_resource_states("EventDestination", move || {
            vec![(ResourceState::Ready, *source.lock().unwrap())]
        });
        let ready = r#"ngrok_events_operator_resources{kind="EventDestination",state="ready"}"#;
        assert!(scrape(&registry).contains(&format!("{ready} 1")));
        *count.lock().unwrap() = 7;
        assert!(scrape(&registry).contains(&format!("{ready} 7")));

        // Registering the kind again replaces the function rather than adding series.
        metrics.register_resource_states("EventDestination", || vec![(ResourceState::Paused, 2)]);
        let text = scrape(&registry);
        assert!(!text.contains(ready), "{text}");
        assert!(text.contains(
            r#"ngrok_events_operator_resources{kind="EventDestination",state="paused"} 2"#
        ));
    }

    #[test]
    fn the_ngrok_client_reports_through_the_observer_trait() {
        let (metrics, registry) = Metrics::new();
        let observer: Arc<dyn NgrokRequestObserver> = Arc::new(metrics.clone());
        observer.observe("GET", Some(200), Duration::from_millis(12));
        assert!(scrape(&registry).contains(
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="2xx"} 1"#
        ));
    }

    #[test]
    fn register_shares_a_registry_with_other_families() {
        let mut registry = Registry::default();
        let other = Counter::<u64>::default();
        registry.register("process_things", "other component", other.clone());
        let metrics = Metrics::register(&mut registry);
        metrics.set_leader(true);
        let text = scrape(&registry);
        assert!(text.contains("process_things_total 0"), "{text}");
        assert!(text.contains("ngrok_events_operator_leader 1"), "{text}");
    }
}
