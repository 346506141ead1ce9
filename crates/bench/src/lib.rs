//! The benchmark of ngrok-events-operator: what an operator costs, in four currencies, measured
//! in one run on the real test-bed API server with the ngrok emulator.
//!
//! - speed: time until N resources are Ready, creation→Ready per resource (seen by a watch in
//!   this process: the time the create was sent → the time the watch saw `Ready=True`);
//! - ngrok calls, by method, from the emulator's request log;
//! - Kubernetes requests of the operator, by verb, from the API server's audit log (the operator
//!   runs as its own static-token user `operator`, the only user the audit policy records);
//! - memory: the operator process's peak RSS (`VmHWM` in `/proc/<pid>/status`).
//!
//! The harness owns its environment: every scenario starts a fresh test bed (etcd,
//! kube-apiserver with the audit log, kube-controller-manager), an in-process emulator and the
//! operator binary as a child process, and stops them at the end.
//!
//! Where things live:
//!
//! - `environment`: the test bed, the emulator and the operator process one scenario runs
//!   against;
//! - `measurement`: CPU seconds and peak RSS from `/proc`, latency percentiles;
//! - `counting`: ngrok calls from the emulator's log, Kubernetes requests from the audit log,
//!   samples of the operator's Prometheus metrics;
//! - `watch`: the bench's own watch of the resources, and waiting on it;
//! - `workload`: the objects the harness applies;
//! - `scenarios`: the runs (standard, faults, bad input, rate limited, shared cluster), each
//!   measuring and checking its targets;
//! - `report`: the checked targets and the Markdown of BENCHMARKS.md.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

mod counting;
mod environment;
mod measurement;
mod report;
mod scenarios;
mod watch;
mod workload;

pub use counting::{FirstReadyHistogram, KubeRequests, NgrokCalls};
pub use environment::TestBed;
pub use measurement::Latency;
pub use report::{Check, Report, Window, render};
pub use scenarios::bad_input::{BadInputReport, BadOutcome, run_bad_input};
pub use scenarios::faults::{FaultsReport, run_faults};
pub use scenarios::rate_limited::{RateLimitedReport, run_rate_limited};
pub use scenarios::shared_cluster;
pub use scenarios::standard::{StandardReport, run_standard};

/// The API key the emulator accepts and the operator uses.
pub const API_KEY: &str = "bench-api-key-0123456789";
/// The operator's default concurrency (`--concurrency`).
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// The operator's default client rate limit and burst (`--api-rate-limit`, ngrok-api's default).
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 100;
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 10;
/// Text that makes the emulator refuse a create (an ngrok-side validation failure).
pub const REFUSE_MARKER: &str = "bench-ngrok-refuses-this";

/// How the harness runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The operator binary (a release build for real numbers).
    pub operator_bin: PathBuf,
    /// Where logs of the operator go.
    pub work_dir: PathBuf,
    /// `--drift-interval` of the operator during the burst and the drift pass.
    pub drift_interval: Duration,
    /// `--concurrency`; `None` = the operator's default.
    pub concurrency: Option<u16>,
    /// Namespaces the N resources (and the unrelated Secrets and ConfigMaps) are spread over.
    pub namespaces: usize,
    /// Size of the data of each unrelated Secret and ConfigMap.
    pub payload_bytes: usize,
    /// Resources created one at a time on an idle operator for the single-resource latency.
    pub single_samples: usize,
    /// Latency of every emulator answer.
    pub latency_ms: u64,
    /// Creates in flight at once when the harness applies objects.
    pub apply_parallelism: usize,
    /// How long the bad-input run watches the stalled resources after they stalled.
    pub bad_input_window: Duration,
    /// Print progress to stderr.
    pub verbose: bool,
}

impl Config {
    pub fn new(operator_bin: PathBuf, work_dir: PathBuf) -> Self {
        Self {
            operator_bin,
            work_dir,
            drift_interval: Duration::from_secs(20),
            concurrency: None,
            namespaces: 4,
            payload_bytes: 1024,
            single_samples: 20,
            latency_ms: 50,
            apply_parallelism: 32,
            bad_input_window: Duration::from_secs(60),
            verbose: true,
        }
    }

    fn concurrency(&self) -> u16 {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }

    fn say(&self, message: impl AsRef<str>) {
        if self.verbose {
            eprintln!("bench: {}", message.as_ref());
        }
    }
}

/// The operator binary next to this executable (`target/release/bench` →
/// `target/release/ngrok-events-operator`), or in the parent directory (test executables live
/// in `target/<profile>/deps`); `BENCH_OPERATOR_BIN` overrides.
pub fn default_operator_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BENCH_OPERATOR_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("ngrok-events-operator");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "no ngrok-events-operator binary next to {}: run `cargo build --release -p ngrok-events-operator` (or set BENCH_OPERATOR_BIN)",
        exe.display()
    )
}
