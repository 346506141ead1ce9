//! The chart's alerts (`charts/ngrok-events-operator/files/alerts.yaml`) and dashboard
//! (`files/dashboard.json`) name only metrics the operator exports: read from the `/metrics` of
//! the real binary after it has created a resource, published an event and run a drift pass.
//! (`tests/chart/test_monitoring.py` unit-tests the alerts with promtool.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::process::{self, OperatorProcess, Spec};
use common::{API_KEY, destination, kinesis_role};
use kube::Api;
use kube::api::PostParams;
use ngrok_api_emulator::Emulator;
use ngrok_events_operator::crd::EventDestination;
use test_support::metrics::sample;

const STEP: Duration = Duration::from_secs(30);
/// Metrics that Prometheus makes itself, not the operator.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// Every metric name an alert expression or a dashboard query uses.
fn names_used() -> BTreeSet<String> {
    let chart = common::repo_path("charts/ngrok-events-operator/files");
    let alerts = std::fs::read_to_string(chart.join("alerts.yaml")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart.join("dashboard.json")).unwrap())
            .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| target["expr"].as_str().unwrap().to_string())
        .chain(
            alerts
                .lines()
                .filter(|line| !line.trim_start().starts_with('#'))
                .map(String::from),
        )
        .collect();
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("ngrok_events_operator_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
        for own in PROMETHEUS_OWN {
            if expr.contains(&format!("{own}{{")) || expr.contains(&format!("{own} ")) {
                names.insert((*own).to_string());
            }
        }
    }
    names
}

#[tokio::test]
async fn every_metric_an_alert_or_the_dashboard_names_is_exported() {
    let used = names_used();
    assert!(used.len() >= 9, "{used:?}");
    let (client, namespace) = common::cluster_with_namespace("monitoring")
        .await
        .expect("test bed");
    let emulator = Emulator::builder()
        .api_key(API_KEY)
        .rate_limit_per_minute(0)
        .spawn()
        .await
        .expect("emulator");
    let spec = Spec {
        label: "operator".into(),
        log_dir: process::log_dir("monitoring"),
        kubeconfig: process::kubeconfig().await,
        api_url: emulator.base_url(),
        api_key: API_KEY.into(),
        namespace: namespace.clone(),
        metrics_addr: process::free_addr(),
        // A drift pass every second, so that its counter has a sample.
        extra_args: vec!["--drift-interval".into(), "1s".into()],
    };
    let mut operator = OperatorProcess::spawn(&spec).unwrap();
    operator.wait_http_ok("/readyz", STEP).await.unwrap();
    Api::<EventDestination>::namespaced(client, &namespace)
        .create(
            &PostParams::default(),
            &destination(
                "audit",
                serde_json::json!({"target": kinesis_role("audit")}),
            ),
        )
        .await
        .unwrap();
    let drift_checked = r#"ngrok_events_operator_drift_checks_total{kind="EventDestination"}"#;
    let metrics = testbed::eventually("a drift check in /metrics", STEP, || async {
        let text = operator.metrics().await;
        sample(&text, drift_checked)
            .is_some_and(|n| n >= 1.0)
            .then_some(text)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log_tail(40)));
    let exported = test_support::metrics::parse(&metrics).sample_names();
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !PROMETHEUS_OWN.contains(&name.as_str()) && !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "named by an alert or a panel but not exported: {missing:?}\n{metrics}"
    );
    operator.sigterm().unwrap();
    operator.wait_exit(STEP).await.unwrap();
}
