//! The standard run for one N: a burst of N creates until all are Ready and the operator is
//! idle, a restart with N Ready resources, an idle drift pass, and single resources created one
//! at a time on the idle operator; then the targets checked against what it cost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde::Serialize;

use crate::Config;
use crate::counting::{FirstReadyHistogram, first_ready_histogram};
use crate::environment::{Env, emulator, operator_args};
use crate::measurement::{Latency, cpu_delta, cpu_snapshot};
use crate::report::{Check, Window, check};
use crate::watch::{snapshot, wait_all};
use crate::workload::{
    create_destinations, create_secrets, good, good_destinations, make_namespaces_and_noise,
};

/// The main run for one N.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StandardReport {
    pub n: usize,
    pub namespaces: usize,
    pub concurrency: u16,
    pub latency_ms: u64,
    pub drift_interval_s: f64,
    /// Time from the first create sent until the watch saw the last resource Ready.
    pub all_ready_s: f64,
    /// Creation→Ready per resource, seen by the bench's watch.
    pub create_to_ready: Latency,
    /// The operator's own histogram (from `creationTimestamp`, second precision).
    pub operator_first_ready: FirstReadyHistogram,
    /// From the first create until the operator was idle.
    pub create: Window,
    pub kube_writes_per_resource: f64,
    /// CPU seconds spent by each process from the first create until the operator was idle.
    pub burst_cpu_s: BTreeMap<String, f64>,
    pub peak_rss_kib: u64,
    pub drift: Window,
    pub restart: Window,
    pub restart_idle_after_s: f64,
    pub restart_peak_rss_kib: u64,
    /// Resources created one at a time on the idle restarted operator.
    pub single: Latency,
    pub checks: Vec<Check>,
}

/// Runs the main scenario for `n` resources: burst, drift pass, restart, single-resource latency.
pub async fn run_standard(config: &Config, n: usize) -> Result<StandardReport> {
    config.say(format!("=== N = {n}"));
    let env = Env::start(config, emulator(config, 0)).await?;
    let result = standard(&env, n).await;
    env.stop().await;
    result
}

async fn standard(env: &Env, n: usize) -> Result<StandardReport> {
    let config = &env.config;
    let (namespaces, planned, keys) = good_destinations("bench", config.namespaces, n);
    make_namespaces_and_noise(env, &namespaces, n).await?;
    create_secrets(env, &planned).await?;
    config.say(format!(
        "{n} unrelated Secrets, {n} ConfigMaps and {} credential Secrets in {} namespaces",
        planned.iter().filter(|p| p.secret.is_some()).count(),
        namespaces.len()
    ));

    // 1. The burst, with the default drift interval: with a short one, a no-op reconcile that
    //    waited behind a long backlog for more than half an interval re-checks its resource
    //    against a listing, which is the drift pass's cost, not the burst's.
    let operator = env
        .start_operator(
            &format!("{n}-a"),
            &operator_args(config, Duration::from_secs(600)),
        )
        .await?;
    let (ngrok_mark, audit_mark) = (env.ngrok_mark(), env.audit.len());
    let cpu_before = cpu_snapshot(env, &operator);
    let start = Instant::now();
    let sent = create_destinations(env, &planned).await?;
    config.say(format!(
        "{n} EventDestinations sent in {:.2}s",
        start.elapsed().as_secs_f64()
    ));
    let timeout = Duration::from_secs(120 + n as u64 / 5);
    wait_all(&env.seen, &keys, "Ready", timeout, |o| o.ready).await?;
    let seen = snapshot(&env.seen);
    let last_ready = keys
        .iter()
        .filter_map(|k| seen.get(k)?.ready_at)
        .max()
        .unwrap_or(start);
    let all_ready_s = last_ready.duration_since(start).as_secs_f64();
    let create_to_ready = Latency::of(
        keys.iter()
            .filter_map(|k| {
                let ready = seen.get(k)?.ready_at?;
                Some(ready.saturating_duration_since(sent[k]).as_secs_f64() * 1000.0)
            })
            .collect(),
    );
    config.say(format!(
        "all {n} Ready after {all_ready_s:.2}s (p50 {:.0} ms, p99 {:.0} ms)",
        create_to_ready.p50_ms, create_to_ready.p99_ms
    ));
    let idle = env
        .wait_idle(&operator, n as f64, Duration::from_secs(3), timeout)
        .await?;
    let burst_cpu_s = cpu_delta(&cpu_before, &cpu_snapshot(env, &operator));
    config.say(format!("CPU seconds in the burst: {burst_cpu_s:?}"));
    let create = Window {
        seconds: idle.duration_since(start).as_secs_f64(),
        ngrok: env.ngrok_since(ngrok_mark),
        kube: env.audit.since(audit_mark)?,
    };
    let operator_first_ready = first_ready_histogram(&operator.metrics().await?);

    let peak_rss_kib = operator.peak_rss_kib()?;
    operator.stop().await?;

    // 2. A restart with N Ready resources, until idle again; the restarted operator runs with
    //    the short drift interval of the drift pass that follows.
    let (ngrok_mark, audit_mark) = (env.ngrok_mark(), env.audit.len());
    let operator = env
        .start_operator(
            &format!("{n}-b"),
            &operator_args(config, config.drift_interval),
        )
        .await?;
    let idle = env
        .wait_idle(&operator, n as f64, Duration::from_secs(3), timeout)
        .await?;
    let restart_idle_after_s = idle.duration_since(operator.started).as_secs_f64();
    let restart = Window {
        seconds: restart_idle_after_s,
        ngrok: env.ngrok_since(ngrok_mark),
        kube: env.audit.since(audit_mark)?,
    };
    config.say(format!(
        "restart: idle after {restart_idle_after_s:.1}s; {} ngrok calls, {} Kubernetes writes",
        restart.ngrok.total, restart.kube.writes
    ));

    // 3. An idle drift pass: from now until the pass's first listing, then idle again.
    let (ngrok_mark, audit_mark) = (env.ngrok_mark(), env.audit.len());
    let start = Instant::now();
    testbed::eventually("a drift pass", config.drift_interval * 3, || async {
        (env.ngrok_since(ngrok_mark).list > 0).then_some(())
    })
    .await?;
    let reconciles = operator.reconciles().await?;
    let idle = env
        .wait_idle(
            &operator,
            reconciles,
            Duration::from_secs(3),
            Duration::from_secs(120),
        )
        .await?;
    let drift = Window {
        seconds: idle.duration_since(start).as_secs_f64(),
        ngrok: env.ngrok_since(ngrok_mark),
        kube: env.audit.since(audit_mark)?,
    };
    config.say(format!(
        "drift pass: {} ngrok calls, {} Kubernetes writes",
        drift.ngrok.total, drift.kube.writes
    ));
    // 4. Single resources, one at a time, on the idle operator (just after its drift pass, so
    //    that the next one is an interval away).
    let mut single = Vec::new();
    let namespace = &namespaces[0];
    for i in 0..config.single_samples {
        let p = good(namespace, "single", n + i);
        if let Some(s) = &p.secret {
            Api::<Secret>::namespaced(env.client.clone(), namespace)
                .create(&PostParams::default(), s)
                .await?;
        }
        let sent = create_destinations(env, std::slice::from_ref(&p)).await?;
        let key = p.key();
        wait_all(
            &env.seen,
            std::slice::from_ref(&key),
            "Ready",
            Duration::from_secs(30),
            |o| o.ready,
        )
        .await?;
        let ready = snapshot(&env.seen)[&key].ready_at.context("ready")?;
        single.push(ready.duration_since(sent[&key]).as_secs_f64() * 1000.0);
        // Let the operator settle (its own status write comes back as a watch event).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let single = Latency::of(single);
    config.say(format!(
        "single resource: p50 {:.0} ms, p99 {:.0} ms",
        single.p50_ms, single.p99_ms
    ));
    let restart_peak_rss_kib = operator.peak_rss_kib()?;
    operator.stop().await?;

    let mut report = StandardReport {
        n,
        namespaces: namespaces.len(),
        concurrency: config.concurrency(),
        latency_ms: config.latency_ms,
        drift_interval_s: config.drift_interval.as_secs_f64(),
        all_ready_s,
        create_to_ready,
        operator_first_ready,
        kube_writes_per_resource: create.kube.writes as f64 / n as f64,
        create,
        burst_cpu_s,
        peak_rss_kib,
        drift,
        restart,
        restart_idle_after_s,
        restart_peak_rss_kib,
        single,
        checks: Vec::new(),
    };
    report.checks = standard_checks(&report);
    Ok(report)
}

fn standard_checks(r: &StandardReport) -> Vec<Check> {
    let n = r.n as u64;
    let pages = n.div_ceil(100);
    let c = &r.create.ngrok;
    let burst_limit = 2.0 * r.n as f64 * r.latency_ms as f64 / 1000.0 / r.concurrency as f64;
    let peak_mib = r.peak_rss_kib.max(r.restart_peak_rss_kib) as f64 / 1024.0;
    let mut checks = vec![
        check(
            "create N: POST = N, PATCH = 0, per-object GET = 0",
            format!("{n} / 0 / 0"),
            format!("{} / {} / {}", c.post, c.patch, c.get),
            c.post == n && c.patch == 0 && c.get == 0,
        ),
        check(
            "idle drift pass: list calls, writes (ngrok + Kubernetes)",
            format!("≤ {pages}, 0"),
            format!(
                "{}, {}",
                r.drift.ngrok.list,
                r.drift.ngrok.writes() + r.drift.kube.writes
            ),
            r.drift.ngrok.list <= pages
                && r.drift.ngrok.writes() == 0
                && r.drift.ngrok.get == 0
                && r.drift.kube.writes == 0,
        ),
        check(
            "restart: ngrok writes, ngrok reads, status writes",
            format!("0, ≤ {}, 0", pages + 2),
            format!(
                "{}, {}, {}",
                r.restart.ngrok.writes(),
                r.restart.ngrok.reads(),
                r.restart.kube.status_writes
            ),
            r.restart.ngrok.writes() == 0
                && r.restart.ngrok.reads() <= pages + 2
                && r.restart.kube.status_writes == 0,
        ),
        check(
            "Kubernetes writes per created resource (Events not counted)",
            "≤ 3",
            format!("{:.2}", r.kube_writes_per_resource),
            r.kube_writes_per_resource <= 3.0,
        ),
        check(
            "single resource on an idle operator: creation→Ready p50",
            "≤ 250 ms",
            format!("{:.0} ms", r.single.p50_ms),
            r.single.p50_ms <= 250.0,
        ),
        check(
            "burst: all Ready within 2 × N × latency / concurrency",
            format!("≤ {burst_limit:.2} s"),
            format!("{:.2} s", r.all_ready_s),
            r.all_ready_s <= burst_limit,
        ),
    ];
    let memory_limit = match r.n {
        0..=1000 => Some(48.0),
        1001..=10000 => Some(160.0),
        _ => None,
    };
    if let Some(limit) = memory_limit {
        checks.push(check(
            "peak RSS (burst and restarted operator)",
            format!("≤ {limit:.0} MiB"),
            format!("{peak_mib:.1} MiB"),
            peak_mib <= limit,
        ));
    }
    checks
}
