//! Logging and Prometheus metrics of the operator.
//!
//! Logs go to stderr (stdout stays clean for `ngrok-events-operator crd | kubectl apply -f -`),
//! either as one JSON object per line or as human-readable text.
//!
//! Metrics are [prometheus-client] families under the `ngrok_events_operator_` prefix. Labels
//! never name a single object (no `namespace`/`name` label): their cardinality is bounded by the
//! number of kinds, error reasons, HTTP methods and states, not by the number of resources.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
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
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

/// Output format of the logs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line; the fields of the enclosing spans are flattened into it.
    Json,
    /// Human-readable text.
    Text,
}

/// Targets that are chatty at `info`/`debug` and rarely useful to an operator's user.
const NOISY_TARGETS: &[&str] = &["hyper", "h2", "rustls", "tower"];

/// Installs the global tracing subscriber.
///
/// `level` is either a bare level (`info`, `debug`, ...) or full `EnvFilter` directives
/// (`info,kube=warn`). A bare level below `trace` also quiets the HTTP/TLS stack
/// (`hyper`, `h2`, `rustls`, `tower` at `warn`); full directives are taken as given.
pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let ansi = std::io::stderr().is_terminal();
    tracing::subscriber::set_global_default(subscriber(format, level, std::io::stderr, ansi)?)
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// The subscriber [`init_logging`] installs, writing to `writer` (tests capture it).
fn subscriber<W>(
    format: LogFormat,
    level: &str,
    writer: W,
    ansi: bool,
) -> anyhow::Result<Box<dyn Subscriber + Send + Sync>>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::builder()
        .parse(filter_directives(level))
        .map_err(|e| anyhow::anyhow!("invalid log level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    })
}

/// `EnvFilter` directives for `level`, adding the noise control of a bare level.
fn filter_directives(level: &str) -> String {
    let level = level.trim();
    match level.parse::<LevelFilter>() {
        // `info`/`debug` would let the HTTP stack log every connection; `warn` and quieter
        // levels are already at least as strict, and `trace` means "everything".
        Ok(bare) if bare > LevelFilter::WARN && bare < LevelFilter::TRACE => {
            let mut directives = level.to_string();
            for target in NOISY_TARGETS {
                directives.push_str(&format!(",{target}=warn"));
            }
            directives
        }
        _ => level.to_string(),
    }
}

/// JSON event format with the fields of every enclosing span at the top level of the object
/// (inner spans win over outer ones, event fields over span fields), so a line logged inside
/// `reconcile{namespace, name}` can be filtered by `namespace`/`name` without digging into
/// nested span objects. `timestamp`, `level`, `target` and `span` (the innermost span's name)
/// are always present and are never overwritten by a field.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut object = Map::new();
        let mut innermost_span = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                innermost_span = Some(span.name());
                let extensions = span.extensions();
                // Span fields are stored pre-formatted by `JsonFields`, as a JSON object.
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str(fields.as_str())
                {
                    object.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut object));

        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        object.insert("timestamp".into(), timestamp.into());
        object.insert("level".into(), metadata.level().as_str().into());
        object.insert("target".into(), metadata.target().into());
        if let Some(span) = innermost_span {
            object.insert("span".into(), span.into());
        }
        let line = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Records an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

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
    state: String,
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
    leader: Gauge,
    events: Family<EventLabels, Counter>,
    resource_states: Arc<ResourceStates>,
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
            leader: Gauge::default(),
            events: Family::default(),
            resource_states: Arc::default(),
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
            "leader",
            "1 while this replica holds the leader lease, else 0",
            inner.leader.clone(),
        );
        registry.register(
            "events",
            "Kubernetes Events published, by kind of the involved object and reason",
            inner.events.clone(),
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
    /// and returns `(state, count)` pairs (`ready`, `reconciling`, `stalled`, `paused`), e.g.
    /// counted from a reflector store. Registering a `kind` again replaces its function.
    /// `states` must not call back into `register_resource_states`.
    pub fn register_resource_states(
        &self,
        kind: &'static str,
        states: impl Fn() -> Vec<(String, i64)> + Send + Sync + 'static,
    ) {
        let mut sources = self
            .inner
            .resource_states
            .sources
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sources.insert(kind, Box::new(states));
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

type StatesFn = Box<dyn Fn() -> Vec<(String, i64)> + Send + Sync>;

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
        metrics.set_leader(true);
        metrics.event_published("EventDestination", "Created");
        metrics.register_resource_states("EventDestination", || {
            vec![("ready".into(), 3), ("stalled".into(), 1)]
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
        metrics.register_resource_states("EventDestination", || vec![("ready".into(), 1)]);

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
            vec![("ready".into(), *source.lock().unwrap())]
        });
        let ready = r#"ngrok_events_operator_resources{kind="EventDestination",state="ready"}"#;
        assert!(scrape(&registry).contains(&format!("{ready} 1")));
        *count.lock().unwrap() = 7;
        assert!(scrape(&registry).contains(&format!("{ready} 7")));

        // Registering the kind again replaces the function rather than adding series.
        metrics.register_resource_states("EventDestination", || vec![("paused".into(), 2)]);
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

    #[test]
    fn a_bare_level_quiets_the_http_stack_unless_tracing() {
        assert_eq!(
            filter_directives("info"),
            "info,hyper=warn,h2=warn,rustls=warn,tower=warn"
        );
        assert_eq!(
            filter_directives("DEBUG"),
            "DEBUG,hyper=warn,h2=warn,rustls=warn,tower=warn"
        );
        assert_eq!(filter_directives("trace"), "trace");
        assert_eq!(filter_directives("warn"), "warn");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("info,kube=warn"), "info,kube=warn");
        assert!(subscriber(LogFormat::Text, "info,kube=warn", std::io::sink, false).is_ok());
        assert!(subscriber(LogFormat::Json, "info,kube=loud", std::io::sink, false).is_err());
    }

    /// A `MakeWriter` that keeps everything written, for asserting on log lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_reconcile_lines(format: LogFormat, level: &str) -> String {
        let out = Captured::default();
        let subscriber = subscriber(format, level, out.clone(), false).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", namespace = "team-a", name = "audit");
            let _entered = span.enter();
            tracing::info!(generation = 3, ready = true, "reconciled");
            tracing::debug!("hidden at info");
            tracing::warn!(target: "hyper::proto", "shown: warn passes the noise filter");
            tracing::info!(target: "hyper::proto", "hidden: hyper below warn");
        });
        out.text()
    }

    #[test]
    fn json_lines_carry_the_span_fields_at_the_top_level() {
        let text = log_reconcile_lines(LogFormat::Json, "info");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "reconciled");
        assert_eq!(line["namespace"], "team-a");
        assert_eq!(line["name"], "audit");
        assert_eq!(line["span"], "reconcile");
        assert_eq!(line["generation"], 3);
        assert_eq!(line["ready"], true);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.contains('T')));
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["target"], "hyper::proto");
        assert_eq!(lines[1]["namespace"], "team-a");
    }

    #[test]
    fn text_lines_are_human_readable() {
        let text = log_reconcile_lines(LogFormat::Text, "info");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(r#"reconcile{namespace="team-a" name="audit"}"#)
                && lines[0].contains("reconciled")
                && lines[0].contains("generation=3"),
            "{text}"
        );
        let debug = log_reconcile_lines(LogFormat::Text, "debug");
        assert!(debug.contains("hidden at info"), "{debug}");
    }
}
