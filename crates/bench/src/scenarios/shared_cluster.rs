//! The shared-cluster scenario (issue 19): what one team can do to another on one operator.
//!
//! 1. **Flood**: namespace `flood` applies N (1000) destinations at once through an ngrok
//!    stand-in enforcing 120 requests a minute, with the operator's default flags; 5 s into
//!    the flood namespace `quiet` creates 10 destinations one at a time, each applied once the
//!    previous one is Ready. Reported: `quiet`'s creation→Ready (target p99 ≤ 10 s), and how
//!    many of the flood's were Ready by then (the flood was still running).
//! 2. **Foreign annotations**: the operator's peak RSS with 200 destinations carrying 200 KiB
//!    of annotations the operator does not read, against the same run without them (target:
//!    within 10 MiB). Each run is an operator watching only its own namespace.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::Config;
use crate::counting::NgrokCalls;
use crate::environment::{Env, emulator};
use crate::measurement::Latency;
use crate::report::{Check, calls, check};
use crate::watch::{snapshot, wait_all};
use crate::workload::{
    Planned, create_destinations, create_secrets, good, make_namespaces_and_noise,
};

/// Flooding creates, and the quiet namespace's resources, of the flood part.
pub const QUIET_N: usize = 10;
/// Resources of each memory run, and the foreign annotation each carries in the second.
pub const ANNOTATED_N: usize = 200;
pub const ANNOTATION_BYTES: usize = 200 * 1024;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SharedClusterReport {
    pub flood_n: usize,
    pub emulator_limit_per_minute: u32,
    /// `quiet`'s creation→Ready, one at a time, while the flood runs.
    pub quiet: Latency,
    /// Flood resources Ready when the last quiet one was.
    pub flood_ready_when_quiet_done: usize,
    pub flood_ngrok: NgrokCalls,
    pub plain_peak_rss_kib: u64,
    pub annotated_peak_rss_kib: u64,
    pub checks: Vec<Check>,
}

pub async fn run(config: &Config, flood_n: usize) -> Result<SharedClusterReport> {
    config.say(format!(
        "=== shared cluster: flood N = {flood_n} at 120/min, {QUIET_N} quiet creates"
    ));
    let env = Env::start(config, emulator(config, 120)).await?;
    let flood = flood_part(&env, flood_n).await;
    env.stop().await;
    let (quiet, flood_ready, flood_ngrok) = flood?;

    config.say(format!(
        "=== shared cluster: peak RSS, {ANNOTATED_N} destinations with and without {} KiB of foreign annotations",
        ANNOTATION_BYTES / 1024
    ));
    let env = Env::start(config, emulator(config, 0)).await?;
    let memory = async {
        let plain = memory_part(&env, "plain", 0).await?;
        let annotated = memory_part(&env, "annotated", ANNOTATION_BYTES).await?;
        anyhow::Ok((plain, annotated))
    }
    .await;
    env.stop().await;
    let (plain, annotated) = memory?;

    let growth_mib = (annotated as f64 - plain as f64) / 1024.0;
    let checks = vec![
        check(
            "shared cluster: quiet namespace creation→Ready p99 while the flood runs",
            "≤ 10 s",
            format!("{:.1} s", quiet.p99_ms / 1000.0),
            quiet.p99_ms <= 10_000.0,
        ),
        check(
            "shared cluster: peak RSS with 200 KiB foreign annotations on 200 resources vs without",
            "≤ +10 MiB",
            format!("{growth_mib:+.1} MiB"),
            growth_mib <= 10.0,
        ),
    ];
    Ok(SharedClusterReport {
        flood_n,
        emulator_limit_per_minute: 120,
        quiet,
        flood_ready_when_quiet_done: flood_ready,
        flood_ngrok,
        plain_peak_rss_kib: plain,
        annotated_peak_rss_kib: annotated,
        checks,
    })
}

/// The flood and the quiet namespace's one-at-a-time creates, with the operator's defaults.
async fn flood_part(env: &Env, flood_n: usize) -> Result<(Latency, usize, NgrokCalls)> {
    let config = &env.config;
    let namespaces = ["flood".to_string(), "quiet".to_string()];
    make_namespaces_and_noise(env, &namespaces, 0).await?;
    let flood: Vec<Planned> = (0..flood_n).map(|i| good("flood", "ed", i)).collect();
    let quiet: Vec<Planned> = (0..QUIET_N).map(|i| good("quiet", "q", i)).collect();
    create_secrets(env, &flood).await?;
    create_secrets(env, &quiet).await?;
    let mut args = vec!["--drift-interval".to_string(), "10m".to_string()];
    if let Some(c) = config.concurrency {
        args.extend(["--concurrency".into(), c.to_string()]);
    }
    let operator = env.start_operator("shared-flood", &args).await?;
    let mark = env.ngrok_mark();
    let flooding = create_destinations(env, &flood);
    let quiet_creates = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mut ms = Vec::new();
        for planned in &quiet {
            let sent = Instant::now();
            create_destinations(env, std::slice::from_ref(planned)).await?;
            wait_all(
                &env.seen,
                &[planned.key()],
                "quiet Ready",
                Duration::from_secs(300),
                |o| o.ready,
            )
            .await?;
            let ready_at = snapshot(&env.seen)
                .get(&planned.key())
                .and_then(|o| o.ready_at)
                .unwrap_or_else(Instant::now);
            ms.push(ready_at.duration_since(sent).as_secs_f64() * 1000.0);
            config.say(format!(
                "quiet {} Ready after {:.0} ms",
                planned.key(),
                ms.last().unwrap()
            ));
        }
        anyhow::Ok(ms)
    };
    let (flooded, quiet_ms) = tokio::join!(flooding, quiet_creates);
    flooded?;
    let quiet_ms = quiet_ms?;
    let flood_ready = snapshot(&env.seen)
        .iter()
        .filter(|(key, o)| key.starts_with("flood/") && o.ready)
        .count();
    let ngrok = env.ngrok_since(mark);
    operator.stop().await.ok();
    Ok((Latency::of(quiet_ms), flood_ready, ngrok))
}

/// Peak RSS (KiB) of an operator watching only `namespace`, once its ANNOTATED_N destinations,
/// each with `annotation_bytes` of a foreign annotation, are Ready and it is idle.
async fn memory_part(env: &Env, namespace: &str, annotation_bytes: usize) -> Result<u64> {
    let namespaces = [namespace.to_string()];
    make_namespaces_and_noise(env, &namespaces, 0).await?;
    let blob = "x".repeat(annotation_bytes);
    let planned: Vec<Planned> = (0..ANNOTATED_N)
        .map(|i| {
            let mut p = good(namespace, "ed", i);
            if annotation_bytes > 0 {
                p.object["metadata"]["annotations"] =
                    serde_json::json!({"example.com/foreign-blob": blob});
            }
            p
        })
        .collect();
    let keys: Vec<String> = planned.iter().map(Planned::key).collect();
    create_secrets(env, &planned).await?;
    create_destinations(env, &planned).await?;
    let args: Vec<String> = [
        "--namespace",
        namespace,
        "--api-rate-limit",
        "0",
        "--drift-interval",
        "10m",
    ]
    .map(String::from)
    .to_vec();
    let operator = env
        .start_operator(&format!("shared-{namespace}"), &args)
        .await?;
    wait_all(&env.seen, &keys, "Ready", Duration::from_secs(300), |o| {
        o.ready
    })
    .await?;
    env.wait_idle(
        &operator,
        ANNOTATED_N as f64,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await?;
    let peak = operator.peak_rss_kib()?;
    env.config.say(format!(
        "{namespace}: peak RSS {:.1} MiB",
        peak as f64 / 1024.0
    ));
    operator.stop().await?;
    Ok(peak)
}

/// The report's paragraph.
pub fn render(r: &SharedClusterReport) -> String {
    format!(
        "Shared cluster (flood N = {} at {}/min; {} quiet creates one at a time): quiet creation→Ready p50 / p99 / max {:.1} / {:.1} / {:.1} s; flood Ready when the quiet ones were done: {} of {}; flood ngrok calls {}. Peak RSS, {} destinations: {:.1} MiB without foreign annotations, {:.1} MiB with {} KiB each ({:+.1} MiB)\n\n",
        r.flood_n,
        r.emulator_limit_per_minute,
        r.quiet.samples,
        r.quiet.p50_ms / 1000.0,
        r.quiet.p99_ms / 1000.0,
        r.quiet.max_ms / 1000.0,
        r.flood_ready_when_quiet_done,
        r.flood_n,
        calls(&r.flood_ngrok),
        ANNOTATED_N,
        r.plain_peak_rss_kib as f64 / 1024.0,
        r.annotated_peak_rss_kib as f64 / 1024.0,
        ANNOTATION_BYTES / 1024,
        (r.annotated_peak_rss_kib as f64 - r.plain_peak_rss_kib as f64) / 1024.0,
    )
}
