//! The report: a checked target of the issue ([`Check`]), a window of operator activity
//! ([`Window`]), everything one invocation measured ([`Report`]), and its rendering as the
//! Markdown tables of BENCHMARKS.md ([`render`]).

use serde::Serialize;

use crate::counting::{KubeRequests, NgrokCalls};
use crate::scenarios::bad_input::BadInputReport;
use crate::scenarios::faults::FaultsReport;
use crate::scenarios::rate_limited::RateLimitedReport;
use crate::scenarios::shared_cluster;
use crate::scenarios::standard::StandardReport;

/// One target of the issue, checked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub target: String,
    pub limit: String,
    pub measured: String,
    pub met: bool,
}

pub(crate) fn check(
    target: &str,
    limit: impl ToString,
    measured: impl ToString,
    met: bool,
) -> Check {
    Check {
        target: target.into(),
        limit: limit.to_string(),
        measured: measured.to_string(),
        met,
    }
}

/// A window of operator activity: what it cost.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Window {
    pub seconds: f64,
    pub ngrok: NgrokCalls,
    pub kube: KubeRequests,
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub date: String,
    pub cores: usize,
    pub command: String,
    pub standard: Vec<StandardReport>,
    pub faults: Option<FaultsReport>,
    pub bad_input: Option<BadInputReport>,
    pub rate_limited: Option<RateLimitedReport>,
    pub shared_cluster: Option<shared_cluster::SharedClusterReport>,
}

impl Report {
    pub fn checks(&self) -> Vec<(String, &Check)> {
        let mut all = Vec::new();
        for s in &self.standard {
            all.extend(s.checks.iter().map(|c| (format!("N={}", s.n), c)));
        }
        if let Some(f) = &self.faults {
            all.extend(f.checks.iter().map(|c| (format!("faults N={}", f.n), c)));
        }
        if let Some(b) = &self.bad_input {
            all.extend(b.checks.iter().map(|c| ("bad input".to_string(), c)));
        }
        if let Some(r) = &self.rate_limited {
            all.extend(
                r.checks
                    .iter()
                    .map(|c| (format!("rate limited N={}", r.n), c)),
            );
        }
        if let Some(r) = &self.shared_cluster {
            all.extend(r.checks.iter().map(|c| ("shared cluster".to_string(), c)));
        }
        all
    }
}

pub(crate) fn calls(c: &NgrokCalls) -> String {
    let mut s = format!(
        "{} (POST {}, PATCH {}, DELETE {}, GET {}, list {})",
        c.total, c.post, c.patch, c.delete, c.get, c.list
    );
    if c.status_429 + c.status_5xx + c.status_4xx + c.dropped > 0 {
        s.push_str(&format!(
            "; 429: {}, 5xx: {}, 4xx: {}, dropped: {}",
            c.status_429, c.status_5xx, c.status_4xx, c.dropped
        ));
    }
    s
}

fn kube(k: &KubeRequests) -> String {
    let verbs: Vec<String> = k.by_verb.iter().map(|(v, n)| format!("{v} {n}")).collect();
    format!(
        "{} ({}); writes {} [{}], events {}",
        k.total,
        verbs.join(", "),
        k.writes,
        k.writes_by_resource
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        k.event_writes
    )
}

/// One row of the main table: its value for one run.
type Row = Box<dyn Fn(&StandardReport) -> String>;

/// The report as Markdown tables (what BENCHMARKS.md holds).
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if !report.standard.is_empty() {
        out.push_str("| measure |");
        for s in &report.standard {
            out.push_str(&format!(" N = {} |", s.n));
        }
        out.push_str("\n|---|");
        for _ in &report.standard {
            out.push_str("---|");
        }
        out.push('\n');
        let rows: Vec<(&str, Row)> = vec![
            (
                "all Ready after (s)",
                Box::new(|s| format!("{:.2}", s.all_ready_s)),
            ),
            (
                "creation→Ready p50 / p99 / max (ms, bench watch)",
                Box::new(|s| {
                    format!(
                        "{:.0} / {:.0} / {:.0}",
                        s.create_to_ready.p50_ms,
                        s.create_to_ready.p99_ms,
                        s.create_to_ready.max_ms
                    )
                }),
            ),
            (
                "operator time_to_first_ready: mean (s), p50/p99 bucket ≤ (s)",
                Box::new(|s| {
                    format!(
                        "{:.2}, ≤ {} / ≤ {}",
                        s.operator_first_ready.mean_s,
                        s.operator_first_ready.p50_le_s,
                        s.operator_first_ready.p99_le_s
                    )
                }),
            ),
            ("burst: ngrok calls", Box::new(|s| calls(&s.create.ngrok))),
            (
                "burst: Kubernetes requests of the operator",
                Box::new(|s| kube(&s.create.kube)),
            ),
            (
                "burst: Kubernetes writes per resource (no Events)",
                Box::new(|s| format!("{:.2}", s.kube_writes_per_resource)),
            ),
            (
                "burst: CPU seconds by process (until idle)",
                Box::new(|s| {
                    s.burst_cpu_s
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
            ),
            (
                "peak RSS, burst operator (MiB)",
                Box::new(|s| format!("{:.1}", s.peak_rss_kib as f64 / 1024.0)),
            ),
            (
                "idle drift pass: ngrok calls",
                Box::new(|s| calls(&s.drift.ngrok)),
            ),
            (
                "idle drift pass: Kubernetes requests",
                Box::new(|s| kube(&s.drift.kube)),
            ),
            (
                "restart: idle after (s)",
                Box::new(|s| format!("{:.1}", s.restart_idle_after_s)),
            ),
            (
                "restart: ngrok calls",
                Box::new(|s| calls(&s.restart.ngrok)),
            ),
            (
                "restart: Kubernetes requests",
                Box::new(|s| kube(&s.restart.kube)),
            ),
            (
                "peak RSS, restarted operator (MiB)",
                Box::new(|s| format!("{:.1}", s.restart_peak_rss_kib as f64 / 1024.0)),
            ),
            (
                "single resource, idle operator: p50 / p99 / max (ms)",
                Box::new(|s| {
                    format!(
                        "{:.0} / {:.0} / {:.0} ({} samples)",
                        s.single.p50_ms, s.single.p99_ms, s.single.max_ms, s.single.samples
                    )
                }),
            ),
        ];
        for (name, value) in rows {
            out.push_str(&format!("| {name} |"));
            for s in &report.standard {
                out.push_str(&format!(" {} |", value(s)));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    if let Some(f) = &report.faults {
        out.push_str(&format!(
            "Faults (N = {}, {:.0}% 5xx, {:.0}% dropped create responses): all Ready after {:.1} s; remote count {}; distinct ids {} (match remote: {}); ngrok calls {} vs. {} fault-free ({:.2}×); Kubernetes: {}\n\n",
            f.n, f.error_rate * 100.0, f.drop_after_create_rate * 100.0, f.all_ready_s, f.remote_count, f.distinct_ids, f.ids_match_remote, calls(&f.ngrok), f.fault_free_calls, f.ngrok.total as f64 / f.fault_free_calls as f64, kube(&f.kube)
        ));
    }
    if let Some(b) = &report.bad_input {
        out.push_str(&format!(
            "Bad input ({} bad, {} good; good Ready: {}):\n\n| kind | count | Stalled | reason | message |\n|---|---|---|---|---|\n",
            b.bad, b.good, b.good_ready
        ));
        for o in &b.outcomes {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                o.kind,
                o.count,
                o.stalled,
                o.reason,
                o.message.replace('|', "\\|")
            ));
        }
        out.push_str(&format!(
            "\nngrok calls until settled: {}; of them refused (4xx, the bad ones'): {}. In the {:.0} s after: {} ({} refused). Bound: {:.0} calls per hour for {} bad resources.\n\n",
            calls(&b.calls_first_pass), b.bad_calls_first_pass, b.window_s, calls(&b.calls_in_window), b.bad_calls_in_window, b.bad_calls_per_hour_bound, b.bad
        ));
    }
    if let Some(r) = &report.rate_limited {
        out.push_str(&format!(
            "Rate limited (N = {}, emulator {}/min, client {}/min burst {}): all Ready after {:.1} s; client budget {:.1} s ({:.2}×); account limit alone {:.1} s; ngrok calls {}\n\n",
            r.n, r.emulator_limit_per_minute, r.client_limit_per_minute, r.client_burst, r.all_ready_s, r.budget_s, r.all_ready_s / r.budget_s.max(0.001), r.account_limit_s, calls(&r.ngrok)
        ));
    }
    if let Some(r) = &report.shared_cluster {
        out.push_str(&shared_cluster::render(r));
    }
    out.push_str("| run | target | limit | measured | |\n|---|---|---|---|---|\n");
    for (run, c) in report.checks() {
        out.push_str(&format!(
            "| {run} | {} | {} | {} | {} |\n",
            c.target,
            c.limit,
            c.measured,
            if c.met { "✓" } else { "✗" }
        ));
    }
    out
}
