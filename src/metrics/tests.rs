use super::*;
use prometheus_client::encoding::text::encode;
use std::sync::Mutex;
use test_support::metrics::Scrape;

/// The registry's text, as `/metrics` serves it.
fn text(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

/// The registry's text, read.
fn scrape(registry: &Registry) -> Scrape {
    test_support::metrics::parse(&text(registry))
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

    let text = text(&registry);
    let read = test_support::metrics::parse(&text);
    for (series, value) in [
        (
            r#"ngrok_events_operator_reconciles_total{kind="EventDestination",result="success"}"#,
            2.0,
        ),
        (
            r#"ngrok_events_operator_reconciles_total{kind="EventDestination",result="SecretNotFound"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_reconcile_duration_seconds_count{kind="EventDestination"}"#,
            2.0,
        ),
        (
            r#"ngrok_events_operator_reconcile_duration_seconds_bucket{le="0.001",kind="EventDestination"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_reconcile_duration_seconds_bucket{le="30.0",kind="EventDestination"}"#,
            2.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_requests_total{method="POST",status_class="2xx"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="3xx"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="4xx"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="5xx"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_requests_total{method="PATCH",status_class="transport_error"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_request_duration_seconds_count{method="GET"}"#,
            3.0,
        ),
        (
            r#"ngrok_events_operator_ngrok_request_duration_seconds_sum{method="PATCH"}"#,
            10.0,
        ),
        (
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="2.5",kind="EventDestination"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="1.0",kind="EventDestination"}"#,
            0.0,
        ),
        (
            r#"ngrok_events_operator_time_to_first_ready_seconds_bucket{le="600.0",kind="EventDestination"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_drift_checks_total{kind="EventDestination"}"#,
            1.0,
        ),
        ("ngrok_events_operator_leader", 1.0),
        (
            r#"ngrok_events_operator_events_total{kind="EventDestination",reason="Created"}"#,
            1.0,
        ),
        (
            r#"ngrok_events_operator_resources{kind="EventDestination",state="ready"}"#,
            3.0,
        ),
        (
            r#"ngrok_events_operator_resources{kind="EventDestination",state="stalled"}"#,
            1.0,
        ),
    ] {
        assert_eq!(read.get(series), Some(value), "{series} in\n{text}");
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
        assert_eq!(read.family_type(family), Some(kind), "{family} in\n{text}");
    }
    // The histograms carry their unit, and read as histograms: cumulative buckets up to +Inf.
    let first_ready = "ngrok_events_operator_time_to_first_ready_seconds";
    assert_eq!(
        read.metadata(first_ready).unwrap().unit.as_deref(),
        Some("seconds")
    );
    let histogram = read.histogram(first_ready, &[("kind", "EventDestination")]);
    let bounds: Vec<f64> = histogram.buckets.iter().map(|(le, _)| *le).collect();
    assert_eq!(
        bounds,
        [families::FIRST_READY_BUCKETS, &[f64::INFINITY]].concat()
    );
    assert_eq!(histogram.buckets.last(), Some(&(f64::INFINITY, 1.0)));
    assert_eq!((histogram.count, histogram.sum), (1.0, 1.5));
    assert_eq!(histogram.quantile_bound(0.5), Some(2.5));
    assert!(read.has_eof(), "{text}");

    metrics.set_leader(false);
    assert_eq!(
        scrape(&registry).get("ngrok_events_operator_leader"),
        Some(0.0)
    );
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

    assert_eq!(
        scrape(&registry).label_names(),
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
    assert_eq!(scrape(&registry).get(ready), Some(1.0));
    *count.lock().unwrap() = 7;
    assert_eq!(scrape(&registry).get(ready), Some(7.0));

    // Registering the kind again replaces the function rather than adding series.
    metrics.register_resource_states("EventDestination", || vec![(ResourceState::Paused, 2)]);
    let scrape = scrape(&registry);
    assert_eq!(scrape.get(ready), None, "{scrape:?}");
    assert_eq!(
        scrape.get(r#"ngrok_events_operator_resources{kind="EventDestination",state="paused"}"#),
        Some(2.0)
    );
}

#[test]
fn the_ngrok_client_reports_through_the_observer_trait() {
    let (metrics, registry) = Metrics::new();
    let observer: Arc<dyn NgrokRequestObserver> = Arc::new(metrics.clone());
    observer.observe("GET", Some(200), Duration::from_millis(12));
    assert_eq!(
        scrape(&registry)
            .get(r#"ngrok_events_operator_ngrok_requests_total{method="GET",status_class="2xx"}"#),
        Some(1.0)
    );
}

#[test]
fn register_shares_a_registry_with_other_families() {
    let mut registry = Registry::default();
    let other = Counter::<u64>::default();
    registry.register("process_things", "other component", other.clone());
    let metrics = Metrics::register(&mut registry);
    metrics.set_leader(true);
    let scrape = scrape(&registry);
    assert_eq!(scrape.get("process_things_total"), Some(0.0), "{scrape:?}");
    assert_eq!(scrape.get("ngrok_events_operator_leader"), Some(1.0));
}
