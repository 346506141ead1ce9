//! What the harness measures of processes and times: CPU seconds and peak RSS of a process,
//! read from `/proc/<pid>/stat` and `/proc/<pid>/status`; CPU seconds of every process of a
//! scenario (the operator, the bench with its in-process emulator, each test-bed server) and
//! their difference between two snapshots; and latency percentiles of a set of samples.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::environment::{Env, Operator};

/// CPU time (user + system, seconds) of a process so far; 0 if it is gone.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (in parentheses, may hold spaces): utime and stime
    // are the 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The test bed's processes (found by their data directory in the command line), by name.
fn testbed_pids(dir: &Path) -> Vec<(String, u32)> {
    let dir = dir.to_string_lossy().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let name = cmdline
            .split(' ')
            .next()
            .and_then(|program| Path::new(program).file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if cmdline.contains(&dir)
            && ["etcd", "kube-apiserver", "kube-controller-manager"].contains(&name.as_str())
        {
            pids.push((name, pid));
        }
    }
    pids
}

/// CPU seconds so far of the operator, the bench itself and each test-bed server.
pub(crate) fn cpu_snapshot(env: &Env, operator: &Operator) -> BTreeMap<String, f64> {
    let mut cpu: BTreeMap<String, f64> = testbed_pids(&env.bed.dir)
        .into_iter()
        .map(|(name, pid)| (name, cpu_seconds(pid)))
        .collect();
    cpu.insert("operator".into(), cpu_seconds(operator.pid));
    cpu.insert("bench+emulator".into(), cpu_seconds(std::process::id()));
    cpu
}

pub(crate) fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| {
            let spent = v - before.get(k).copied().unwrap_or(0.0);
            (k.clone(), (spent * 100.0).round() / 100.0)
        })
        .collect()
}

pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if ms.is_empty() {
                0.0
            } else {
                ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1]
            }
        };
        Self {
            samples: ms.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
    }
}
