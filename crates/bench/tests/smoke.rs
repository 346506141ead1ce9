//! The instrument works: a tiny N end to end, on a test bed the harness starts itself, with the
//! operator binary of this build (`target/<profile>/ngrok-events-operator`, which a workspace
//! test run builds; `BENCH_OPERATOR_BIN` overrides). Asserts the report's invariants, not the
//! performance targets.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_run_measures_every_currency() {
    let operator_bin = bench::default_operator_bin().expect("operator binary");
    let work_dir = std::env::temp_dir().join(format!("bench-smoke-{}", std::process::id()));
    let mut config = bench::Config::new(operator_bin, work_dir);
    config.drift_interval = Duration::from_secs(5);
    config.namespaces = 2;
    config.single_samples = 2;
    let n = 6;
    let report = bench::run_standard(&config, n).await.expect("bench run");

    // Exactly N creates, nothing else to create them.
    assert_eq!(report.create.ngrok.post, n as u64, "{report:#?}");
    assert_eq!(report.create.ngrok.patch, 0, "{report:#?}");
    assert_eq!(report.create.ngrok.get, 0, "{report:#?}");
    // All Ready, each with a latency.
    assert_eq!(report.create_to_ready.samples, n);
    assert!(report.all_ready_s > 0.0);
    assert_eq!(report.single.samples, 2);
    // The audit log saw the operator's writes: at least the finalizer and a status per resource.
    assert!(
        report.create.kube.writes >= 2 * n as u64,
        "{:?}",
        report.create.kube
    );
    assert!(report.create.kube.status_writes >= n as u64);
    // A drift pass happened and listed the account.
    assert!(report.drift.ngrok.list >= 1, "{:?}", report.drift.ngrok);
    assert_eq!(
        report.restart.ngrok.writes(),
        0,
        "{:?}",
        report.restart.ngrok
    );
    assert!(report.peak_rss_kib > 0 && report.restart_peak_rss_kib > 0);
    let markdown = bench::render(&bench::Report {
        standard: vec![report],
        ..Default::default()
    });
    assert!(markdown.contains("| N = 6 |"), "{markdown}");
}
