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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use backon::Retryable;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use kube::runtime::watcher;
use ngrok_api_emulator::{Emulator, EmulatorHandle, RecordedRequest};
use serde::Serialize;
use serde_json::{Value, json};

pub mod shared_cluster;

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

// ---------------------------------------------------------------------------------------------
// The environment: test bed, emulator, operator process.

/// A test bed with the audit log of the `operator` user, held by a thread of its own (the
/// servers die with the thread that started them).
pub struct TestBed {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub kubeconfig: PathBuf,
    pub operator_kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    pub dir: PathBuf,
}

impl TestBed {
    /// Starts the servers (blocking: call from `spawn_blocking`).
    pub fn start() -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-testbed".into())
            .spawn(move || {
                testbed::servers::remove_stale_dirs();
                let options = testbed::servers::Options {
                    audit_operator: true,
                    ..Default::default()
                };
                match testbed::Binaries::locate()
                    .and_then(|b| testbed::Servers::start_with(&b, &options))
                {
                    Ok(servers) => {
                        let _ = tx.send(Ok((
                            servers.kubeconfig().to_path_buf(),
                            servers.operator_kubeconfig().to_path_buf(),
                            servers
                                .audit_log()
                                .map(Path::to_path_buf)
                                .unwrap_or_default(),
                            servers.dir().to_path_buf(),
                        )));
                        let _ = stop_rx.recv();
                        drop(servers);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            })?;
        let (kubeconfig, operator_kubeconfig, audit_log, dir) = rx
            .recv()?
            .map_err(|e| anyhow!("starting the test bed: {e}"))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
            kubeconfig,
            operator_kubeconfig,
            audit_log,
            dir,
        })
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Everything one scenario runs against.
struct Env {
    config: Config,
    bed: TestBed,
    client: kube::Client,
    emulator: EmulatorHandle,
    audit: Audit,
    seen: Seen,
    watch: tokio::task::JoinHandle<()>,
    resource: ApiResource,
}

impl Env {
    async fn start(config: &Config, emulator: ngrok_api_emulator::EmulatorBuilder) -> Result<Self> {
        let started = Instant::now();
        let bed = tokio::task::spawn_blocking(TestBed::start).await??;
        let client = testbed::client_from_kubeconfig(&bed.kubeconfig).await?;
        let crds = tokio::process::Command::new(&config.operator_bin)
            .arg("crd")
            .output()
            .await
            .with_context(|| format!("running {} crd", config.operator_bin.display()))?;
        if !crds.status.success() {
            bail!("{} crd failed", config.operator_bin.display());
        }
        testbed::install_crds(&client, &String::from_utf8(crds.stdout)?).await?;
        let emulator = emulator.spawn().await?;
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("events.ngrok.io", "v1alpha1", "EventDestination"),
            "eventdestinations",
        );
        let (seen, watch) = spawn_watch(client.clone(), resource.clone()).await?;
        config.say(format!(
            "test bed {} up in {:.1}s; emulator {}",
            bed.dir.display(),
            started.elapsed().as_secs_f64(),
            emulator.base_url()
        ));
        Ok(Self {
            config: config.clone(),
            audit: Audit::new(bed.audit_log.clone()),
            bed,
            client,
            emulator,
            seen,
            watch,
            resource,
        })
    }

    async fn stop(self) {
        self.watch.abort();
        self.emulator.shutdown().await;
        let bed = self.bed;
        let _ = tokio::task::spawn_blocking(move || drop(bed)).await;
    }

    fn destinations(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.resource)
    }

    async fn start_operator(&self, label: &str, args: &[String]) -> Result<Operator> {
        Operator::start(
            &self.config,
            &self.bed.operator_kubeconfig,
            &self.emulator.base_url(),
            label,
            args,
        )
        .await
    }

    /// ngrok calls recorded since `mark` (an index into the emulator's request log).
    fn ngrok_since(&self, mark: usize) -> NgrokCalls {
        let requests = self.emulator.requests();
        NgrokCalls::of(&requests[mark.min(requests.len())..])
    }

    fn ngrok_mark(&self) -> usize {
        self.emulator.requests().len()
    }

    /// Waits until the operator is idle: no ngrok call, no Kubernetes request of the operator
    /// and no reconcile for `quiet`, and at least `min_reconciles` reconciles counted.
    async fn wait_idle(
        &self,
        operator: &Operator,
        min_reconciles: f64,
        quiet: Duration,
        timeout: Duration,
    ) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        // What changed last, and when: idle is `quiet` without a change.
        let last = std::cell::Cell::new((usize::MAX, u64::MAX, -1.0));
        let since = std::cell::Cell::new(Instant::now());
        let (last, since) = (&last, &since);
        // Fails with the reconcile count while the operator is still busy.
        let idle_since = || async move {
            let reconciles = operator.reconciles().await.unwrap_or(-1.0);
            let now = (self.ngrok_mark(), self.audit.len(), reconciles);
            if now != last.get() {
                last.set(now);
                since.set(Instant::now());
            } else if since.get().elapsed() >= quiet && reconciles >= min_reconciles {
                return Ok(since.get());
            }
            Err(reconciles)
        };
        idle_since
            .retry(testbed::every(Duration::from_millis(200)))
            .when(|_| Instant::now() <= deadline)
            .await
            .map_err(|reconciles| {
                anyhow!(
                    "the operator did not become idle within {timeout:?} (reconciles {reconciles}, wanted ≥ {min_reconciles})"
                )
            })
    }
}

/// The operator binary running as a child process.
struct Operator {
    child: tokio::process::Child,
    pid: u32,
    metrics_url: String,
    http: reqwest::Client,
    started: Instant,
}

impl Operator {
    async fn start(
        config: &Config,
        kubeconfig: &Path,
        api_url: &str,
        label: &str,
        extra: &[String],
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        std::fs::create_dir_all(&config.work_dir)?;
        let log_path = config.work_dir.join(format!("operator-{label}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut command = tokio::process::Command::new(&config.operator_bin);
        command
            .arg("run")
            .arg("--api-url")
            .arg(api_url)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("NGROK_API_KEY", API_KEY)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("NGROK_API_URL")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", config.operator_bin.display()))?;
        let pid = child.id().context("operator pid")?;
        let operator = Self {
            child,
            pid,
            metrics_url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            started,
        };
        testbed::eventually(
            "the operator to be ready",
            Duration::from_secs(60),
            || async {
                let readyz = operator
                    .http
                    .get(format!("{}/readyz", operator.metrics_url));
                let response = readyz.send().await.ok()?;
                response.status().is_success().then_some(())
            },
        )
        .await
        .with_context(|| format!("see {}", log_path.display()))?;
        config.say(format!(
            "operator {label} (pid {pid}) ready in {:.2}s, log {}",
            started.elapsed().as_secs_f64(),
            log_path.display()
        ));
        Ok(operator)
    }

    async fn metrics(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    async fn reconciles(&self) -> Result<f64> {
        Ok(metric_sum(
            &self.metrics().await?,
            "ngrok_events_operator_reconciles_total",
        ))
    }

    /// Peak resident set size so far, in KiB.
    fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmHWM")
    }

    /// SIGTERM, then waits for the exit (in-flight reconciles finish first).
    async fn stop(mut self) -> Result<()> {
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("the operator exited with {status} after SIGTERM");
                }
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the operator did not exit within 30 s of SIGTERM")
            }
        }
    }
}

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
fn cpu_snapshot(env: &Env, operator: &Operator) -> BTreeMap<String, f64> {
    let mut cpu: BTreeMap<String, f64> = testbed_pids(&env.bed.dir)
        .into_iter()
        .map(|(name, pid)| (name, cpu_seconds(pid)))
        .collect();
    cpu.insert("operator".into(), cpu_seconds(operator.pid));
    cpu.insert("bench+emulator".into(), cpu_seconds(std::process::id()));
    cpu
}

fn cpu_delta(
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

fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------------------------
// Counting: ngrok calls, Kubernetes requests, Prometheus samples.

/// ngrok calls by method (and list vs. single GET), from the emulator's request log.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NgrokCalls {
    pub total: u64,
    pub post: u64,
    pub patch: u64,
    pub delete: u64,
    /// `GET /event_destinations/{id}`.
    pub get: u64,
    /// `GET /event_destinations` (one per page).
    pub list: u64,
    pub other: u64,
    pub status_429: u64,
    pub status_5xx: u64,
    /// 4xx other than 429: refusals.
    pub status_4xx: u64,
    /// Connections closed without an answer (the emulator's dropped creates).
    pub dropped: u64,
}

impl NgrokCalls {
    fn of(requests: &[RecordedRequest]) -> Self {
        let mut calls = Self::default();
        for r in requests {
            calls.total += 1;
            match (r.method.as_str(), r.route.as_str()) {
                ("POST", _) => calls.post += 1,
                ("PATCH", _) => calls.patch += 1,
                ("DELETE", _) => calls.delete += 1,
                ("GET", "/event_destinations") => calls.list += 1,
                ("GET", route) if route.starts_with("/event_destinations/") => calls.get += 1,
                _ => calls.other += 1,
            }
            match r.status {
                Some(429) => calls.status_429 += 1,
                Some(s) if s >= 500 => calls.status_5xx += 1,
                Some(s) if s >= 400 => calls.status_4xx += 1,
                Some(_) => {}
                None => calls.dropped += 1,
            }
        }
        calls
    }

    /// Calls that change ngrok.
    pub fn writes(&self) -> u64 {
        self.post + self.patch + self.delete
    }

    /// Calls that read ngrok.
    pub fn reads(&self) -> u64 {
        self.get + self.list
    }
}

/// Kubernetes requests of the operator, from the audit log.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KubeRequests {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// create/update/patch/delete, Events not counted.
    pub writes: u64,
    /// Writes by `resource[/subresource]`, Events not counted.
    pub writes_by_resource: BTreeMap<String, u64>,
    /// Writes of `eventdestinations/status`.
    pub status_writes: u64,
    /// Writes of `events` (not counted in `writes`).
    pub event_writes: u64,
}

/// The audit log of the `operator` user: counted between two byte offsets.
struct Audit {
    path: PathBuf,
}

impl Audit {
    fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests whose audit lines lie at or after `from` (a [`Audit::len`]); complete lines
    /// only.
    fn since(&self, from: u64) -> Result<KubeRequests> {
        let mut text = String::new();
        match std::fs::File::open(&self.path) {
            Ok(mut file) => {
                file.seek(SeekFrom::Start(from))?;
                file.read_to_string(&mut text)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut requests = KubeRequests::default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let verb = event["verb"].as_str().unwrap_or_default();
            let stage = event["stage"].as_str().unwrap_or_default();
            // A watch is logged when it starts and when it ends; anything else when answered.
            let counted = match verb {
                "watch" => stage == "ResponseStarted",
                _ => stage == "ResponseComplete",
            };
            if !counted || event["user"]["username"] != testbed::servers::OPERATOR_USER {
                continue;
            }
            requests.total += 1;
            *requests.by_verb.entry(verb.to_string()).or_default() += 1;
            if matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            ) {
                let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
                let subresource = event["objectRef"]["subresource"].as_str();
                if resource == "events" {
                    requests.event_writes += 1;
                    continue;
                }
                requests.writes += 1;
                let key = match subresource {
                    Some(sub) => format!("{resource}/{sub}"),
                    None => resource.to_string(),
                };
                if resource == "eventdestinations" && subresource == Some("status") {
                    requests.status_writes += 1;
                }
                *requests.writes_by_resource.entry(key).or_default() += 1;
            }
        }
        Ok(requests)
    }
}

/// The sum of every sample of a metric family (all label sets).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The operator's own `time_to_first_ready_seconds` histogram (from `creationTimestamp`, which
/// has whole-second precision: a coarse cross-check of the watch's numbers).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FirstReadyHistogram {
    pub count: u64,
    pub mean_s: f64,
    /// Upper bound of the bucket holding the median / 99th percentile.
    pub p50_le_s: f64,
    pub p99_le_s: f64,
}

fn first_ready_histogram(text: &str) -> FirstReadyHistogram {
    let name = "ngrok_events_operator_time_to_first_ready_seconds";
    let count = metric_sum(text, &format!("{name}_count"));
    let sum = metric_sum(text, &format!("{name}_sum"));
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c >= q * count && count > 0.0)
            .map_or(0.0, |(le, _)| *le)
    };
    FirstReadyHistogram {
        count: count as u64,
        mean_s: if count > 0.0 { sum / count } else { 0.0 },
        p50_le_s: quantile(0.5),
        p99_le_s: quantile(0.99),
    }
}

// ---------------------------------------------------------------------------------------------
// Watching the resources.

/// What the bench's own watch saw of one resource.
#[derive(Debug, Clone, Default)]
struct Observed {
    ready_at: Option<Instant>,
    ready: bool,
    stalled: bool,
    reason: Option<String>,
    message: Option<String>,
    id: Option<String>,
}

type Seen = Arc<Mutex<HashMap<String, Observed>>>;

async fn spawn_watch(
    client: kube::Client,
    resource: ApiResource,
) -> Result<(Seen, tokio::task::JoinHandle<()>)> {
    let seen: Seen = Arc::default();
    let api = Api::<DynamicObject>::all_with(client, &resource);
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let state = seen.clone();
    let task = tokio::spawn(async move {
        let mut synced = Some(synced_tx);
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            let object = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = synced.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                _ => continue,
            };
            let now = Instant::now();
            let key = format!(
                "{}/{}",
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default()
            );
            let status = &object.data["status"];
            let condition = |type_: &str| {
                status["conditions"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
                    .cloned()
            };
            let ready = condition("Ready");
            let stalled = condition("Stalled");
            let mut all = state.lock().expect("seen lock");
            let entry = all.entry(key).or_default();
            entry.ready = ready.as_ref().is_some_and(|c| c["status"] == "True");
            if entry.ready && entry.ready_at.is_none() {
                entry.ready_at = Some(now);
            }
            entry.stalled = stalled.as_ref().is_some_and(|c| c["status"] == "True");
            let reason_of = stalled
                .as_ref()
                .filter(|_| entry.stalled)
                .or(ready.as_ref());
            entry.reason = reason_of.and_then(|c| c["reason"].as_str().map(String::from));
            entry.message = reason_of.and_then(|c| c["message"].as_str().map(String::from));
            entry.id = status["id"].as_str().map(String::from);
        }
    });
    tokio::time::timeout(Duration::from_secs(30), synced_rx)
        .await
        .context("the bench's watch did not sync")??;
    Ok((seen, task))
}

fn snapshot(seen: &Seen) -> HashMap<String, Observed> {
    seen.lock().expect("seen lock").clone()
}

/// Waits until `done` holds for every key, or fails naming some that do not.
async fn wait_all(
    seen: &Seen,
    keys: &[String],
    what: &str,
    timeout: Duration,
    done: impl Fn(&Observed) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    // Fails with some of the keys for which `done` does not hold yet.
    let all_done = || {
        let missing: Vec<String> = {
            let all = seen.lock().expect("seen lock");
            keys.iter()
                .filter(|k| !all.get(*k).is_some_and(&done))
                .take(5)
                .map(|k| format!("{k}: {:?}", all.get(k).map(|o| (&o.reason, &o.message))))
                .collect()
        };
        std::future::ready(if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        })
    };
    all_done
        .retry(testbed::every(Duration::from_millis(20)))
        .when(|_| Instant::now() <= deadline)
        .await
        .map_err(|missing| anyhow!("not all {what} within {timeout:?}, e.g. {missing:?}"))
}

// ---------------------------------------------------------------------------------------------
// What the harness applies.

/// One EventDestination to create, and the Secret it needs (a third of them use credentials
/// from Secrets).
struct Planned {
    namespace: String,
    name: String,
    object: Value,
    secret: Option<Secret>,
}

impl Planned {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A Secret the resources may read: labelled `events.ngrok.io/credentials=true`, as the
/// operator requires by default.
fn credentials_secret(namespace: &str, name: &str, data: BTreeMap<String, String>) -> Secret {
    let mut secret = secret(namespace, name, data);
    secret.metadata.labels = Some(BTreeMap::from([(
        "events.ngrok.io/credentials".to_string(),
        "true".to_string(),
    )]));
    secret
}

fn secret(namespace: &str, name: &str, data: BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        string_data: Some(data),
        ..Default::default()
    }
}

fn destination_object(namespace: &str, name: &str, spec: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "events.ngrok.io/v1alpha1",
        "kind": "EventDestination",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": spec,
    })
}

/// The i-th good resource: targets rotate over the five kinds; i % 3 == 0 uses credentials from
/// a Secret of its own. Every description is unique, so no two have the same content.
fn good(namespace: &str, prefix: &str, i: usize) -> Planned {
    let name = format!("{prefix}-{i:05}");
    let description = format!("bench {namespace}/{name}");
    let role = json!({"role": {"roleArn": "arn:aws:iam::123456789012:role/bench"}});
    let creds_secret = format!("{name}-creds");
    let (target, secret_data): (Value, Option<BTreeMap<String, String>>) = match (i % 3, i % 2) {
        (0, 0) => (
            json!({"kinesis": {
                "streamArn": format!("arn:aws:kinesis:us-east-2:123456789012:stream/bench-{i}"),
                "auth": {"creds": {
                    "accessKeyIdRef": {"name": creds_secret, "key": "AWS_ACCESS_KEY_ID"},
                    "secretAccessKeyRef": {"name": creds_secret, "key": "AWS_SECRET_ACCESS_KEY"},
                }},
            }}),
            Some(BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".into(), format!("AKIABENCH{i:011}")),
                ("AWS_SECRET_ACCESS_KEY".into(), format!("bench-secret-{i}")),
            ])),
        ),
        (0, _) if i % 4 == 1 || i % 4 == 3 => (
            json!({"datadog": {"apiKeyRef": {"name": creds_secret, "key": "api-key"}, "ddsite": "datadoghq.com"}}),
            Some(BTreeMap::from([("api-key".into(), format!("{:032x}", i))])),
        ),
        (0, _) => (
            json!({"azureLogsIngestion": {
                "tenantId": "00000000-0000-0000-0000-000000000001",
                "clientId": "00000000-0000-0000-0000-000000000002",
                "clientSecretRef": {"name": creds_secret, "key": "client-secret"},
                "logsIngestionUri": "https://bench.eastus-1.ingest.monitor.azure.com",
                "dataCollectionRuleId": "dcr-0123456789abcdef0123456789abcdef",
                "dataCollectionStreamName": "Custom-NgrokEvents",
            }}),
            Some(BTreeMap::from([(
                "client-secret".into(),
                format!("bench~secret~{i}"),
            )])),
        ),
        (1, _) => (
            json!({"firehose": {
                "deliveryStreamArn": format!("arn:aws:firehose:us-east-2:123456789012:deliverystream/bench-{i}"),
                "auth": role,
            }}),
            None,
        ),
        _ => (
            json!({"cloudwatchLogs": {
                "logGroupArn": format!("arn:aws:logs:us-east-2:123456789012:log-group:bench-{i}"),
                "auth": role,
            }}),
            None,
        ),
    };
    Planned {
        namespace: namespace.into(),
        object: destination_object(
            namespace,
            &name,
            json!({"description": description, "target": target}),
            json!({}),
        ),
        secret: secret_data.map(|data| credentials_secret(namespace, &creds_secret, data)),
        name,
    }
}

/// Creates namespaces, then `n` unrelated Secrets and `n` unrelated ConfigMaps spread over them
/// (nothing references them: an operator that caches what it does not need pays for them).
async fn make_namespaces_and_noise(env: &Env, namespaces: &[String], n: usize) -> Result<()> {
    for namespace in namespaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
    }
    let payload: String = "x".repeat(env.config.payload_bytes);
    let jobs = (0..n).flat_map(|i| {
        let namespace = namespaces[i % namespaces.len()].clone();
        [(namespace.clone(), i, true), (namespace, i, false)]
    });
    let results: Vec<Result<()>> = futures::stream::iter(jobs)
        .map(|(namespace, i, is_secret)| {
            let client = env.client.clone();
            let payload = payload.clone();
            async move {
                let name = format!("unrelated-{i:05}");
                let data = BTreeMap::from([("payload".to_string(), payload)]);
                if is_secret {
                    Api::<Secret>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &secret(&namespace, &name, data))
                        .await?;
                } else {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(name),
                            namespace: Some(namespace.clone()),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    Api::<ConfigMap>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &cm)
                        .await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(env.config.apply_parallelism)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn create_secrets(env: &Env, planned: &[Planned]) -> Result<()> {
    let results: Vec<Result<()>> =
        futures::stream::iter(planned.iter().filter_map(|p| p.secret.clone()))
            .map(|s| {
                let client = env.client.clone();
                async move {
                    let namespace = s.metadata.namespace.clone().unwrap_or_default();
                    Api::<Secret>::namespaced(client, &namespace)
                        .create(&PostParams::default(), &s)
                        .await?;
                    Ok(())
                }
            })
            .buffer_unordered(env.config.apply_parallelism)
            .collect()
            .await;
    results.into_iter().collect()
}

/// Creates the resources at once (`apply_parallelism` in flight); returns when each create was
/// sent, by key.
async fn create_destinations(env: &Env, planned: &[Planned]) -> Result<HashMap<String, Instant>> {
    let results: Vec<Result<(String, Instant)>> = futures::stream::iter(planned)
        .map(|p| async move {
            let object: DynamicObject = serde_json::from_value(p.object.clone())?;
            let sent = Instant::now();
            env.destinations(&p.namespace)
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("creating {}", p.key()))?;
            Ok((p.key(), sent))
        })
        .buffer_unordered(env.config.apply_parallelism)
        .collect()
        .await;
    results.into_iter().collect()
}

fn namespaces(prefix: &str, count: usize) -> Vec<String> {
    (0..count.max(1)).map(|i| format!("{prefix}-{i}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Reports.

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(mut ms: Vec<f64>) -> Self {
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

/// One target of the issue, checked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub target: String,
    pub limit: String,
    pub measured: String,
    pub met: bool,
}

fn check(target: &str, limit: impl ToString, measured: impl ToString, met: bool) -> Check {
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
    let env = Env::start(
        config,
        Emulator::builder()
            .api_key(API_KEY)
            .latency_ms(config.latency_ms)
            .rate_limit_per_minute(0),
    )
    .await?;
    let result = standard(&env, n).await;
    env.stop().await;
    result
}

fn operator_args(config: &Config, drift: Duration) -> Vec<String> {
    let mut args = vec![
        "--api-rate-limit".into(),
        "0".into(),
        "--drift-interval".into(),
        format!("{}ms", drift.as_millis()),
    ];
    if let Some(c) = config.concurrency {
        args.extend(["--concurrency".into(), c.to_string()]);
    }
    args
}

async fn standard(env: &Env, n: usize) -> Result<StandardReport> {
    let config = &env.config;
    let namespaces = namespaces("bench", config.namespaces);
    let planned: Vec<Planned> = (0..n)
        .map(|i| good(&namespaces[i % namespaces.len()], "ed", i))
        .collect();
    let keys: Vec<String> = planned.iter().map(Planned::key).collect();
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

// ---------------------------------------------------------------------------------------------
// Reliability: faults.

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultsReport {
    pub n: usize,
    pub error_rate: f64,
    pub drop_after_create_rate: f64,
    pub all_ready_s: f64,
    pub remote_count: usize,
    pub distinct_ids: usize,
    pub ids_match_remote: bool,
    pub ngrok: NgrokCalls,
    /// Calls of the same N without faults (exactly N POSTs, measured by the standard run).
    pub fault_free_calls: u64,
    pub kube: KubeRequests,
    pub checks: Vec<Check>,
}

pub async fn run_faults(
    config: &Config,
    n: usize,
    fault_free_calls: Option<u64>,
) -> Result<FaultsReport> {
    let (error_rate, drop_rate) = (0.3, 0.05);
    config.say(format!(
        "=== faults: N = {n}, {error_rate} 5xx, {drop_rate} dropped creates"
    ));
    let env = Env::start(
        config,
        Emulator::builder()
            .api_key(API_KEY)
            .latency_ms(config.latency_ms)
            .rate_limit_per_minute(0)
            .error_rate(error_rate)
            .drop_after_create_rate(drop_rate),
    )
    .await?;
    let result = async {
        let namespaces = namespaces("faults", config.namespaces);
        let planned: Vec<Planned> = (0..n)
            .map(|i| good(&namespaces[i % namespaces.len()], "ed", i))
            .collect();
        let keys: Vec<String> = planned.iter().map(Planned::key).collect();
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        create_secrets(&env, &planned).await?;
        let operator = env
            .start_operator(
                &format!("faults-{n}"),
                &operator_args(config, Duration::from_secs(600)),
            )
            .await?;
        let (ngrok_mark, audit_mark) = (env.ngrok_mark(), env.audit.len());
        let start = Instant::now();
        create_destinations(&env, &planned).await?;
        wait_all(&env.seen, &keys, "Ready", Duration::from_secs(600), |o| {
            o.ready
        })
        .await?;
        let all_ready_s = start.elapsed().as_secs_f64();
        env.wait_idle(
            &operator,
            n as f64,
            Duration::from_secs(3),
            Duration::from_secs(300),
        )
        .await?;
        let seen = snapshot(&env.seen);
        let ids: HashSet<String> = keys
            .iter()
            .filter_map(|k| seen.get(k)?.id.clone())
            .collect();
        let remote: HashSet<String> = env.emulator.destination_ids().into_iter().collect();
        let ngrok = env.ngrok_since(ngrok_mark);
        let kube = env.audit.since(audit_mark)?;
        operator.stop().await?;
        let fault_free = fault_free_calls.unwrap_or(n as u64);
        let checks = vec![
            check(
                "faults: all Ready",
                n,
                keys.iter()
                    .filter(|k| seen.get(*k).is_some_and(|o| o.ready))
                    .count(),
                true,
            ),
            check(
                "faults: remote count = N",
                n,
                remote.len(),
                remote.len() == n,
            ),
            check(
                "faults: no duplicate ids (distinct status ids = N = remote ids)",
                n,
                ids.len(),
                ids.len() == n && ids == remote,
            ),
            check(
                "faults: ngrok calls ≤ 2 × fault-free",
                format!("≤ {}", 2 * fault_free),
                ngrok.total,
                ngrok.total <= 2 * fault_free,
            ),
        ];
        Ok(FaultsReport {
            n,
            error_rate,
            drop_after_create_rate: drop_rate,
            all_ready_s,
            remote_count: remote.len(),
            distinct_ids: ids.len(),
            ids_match_remote: ids == remote,
            ngrok,
            fault_free_calls: fault_free,
            kube,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}

// ---------------------------------------------------------------------------------------------
// Reliability: bad input.

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadOutcome {
    pub kind: String,
    pub count: usize,
    pub stalled: usize,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadInputReport {
    pub bad: usize,
    pub good: usize,
    pub good_ready: usize,
    pub outcomes: Vec<BadOutcome>,
    /// ngrok calls answered 4xx (the bad resources' calls) until all settled.
    pub bad_calls_first_pass: u64,
    /// Every ngrok call until all settled (good creates included).
    pub calls_first_pass: NgrokCalls,
    pub window_s: f64,
    /// ngrok calls answered 4xx in the window after they settled.
    pub bad_calls_in_window: u64,
    pub calls_in_window: NgrokCalls,
    /// first pass + window calls scaled to an hour.
    pub bad_calls_per_hour_bound: f64,
    pub checks: Vec<Check>,
}

/// Bad resources of six kinds (the API server accepts all of them).
fn bad(namespace: &str, i: usize) -> (String, Planned, Option<Secret>) {
    let name = format!("bad-{i:03}");
    let kinesis = |auth: Value| {
        json!({"kinesis": {
            "streamArn": format!("arn:aws:kinesis:us-east-2:123456789012:stream/bad-{i}"),
            "auth": auth,
        }})
    };
    let role = json!({"role": {"roleArn": "arn:aws:iam::123456789012:role/bench"}});
    let creds = |secret: &str| {
        json!({"creds": {
            "accessKeyIdRef": {"name": secret, "key": "AWS_ACCESS_KEY_ID"},
            "secretAccessKeyRef": {"name": secret, "key": "AWS_SECRET_ACCESS_KEY"},
        }})
    };
    let description = format!("bad {namespace}/{name}");
    let (kind, spec, annotations, extra_secret) = match i % 6 {
        0 => (
            "missing Secret",
            json!({"description": description, "target": kinesis(creds(&format!("{name}-absent")))}),
            json!({}),
            None,
        ),
        1 => (
            "wrong keys in Secret",
            json!({"description": description, "target": kinesis(creds(&format!("{name}-creds")))}),
            json!({}),
            Some(credentials_secret(
                namespace,
                &format!("{name}-creds"),
                BTreeMap::from([
                    ("access-key".into(), "x".into()),
                    ("secret".into(), "y".into()),
                ]),
            )),
        ),
        2 => (
            "non-existent adopt id",
            json!({"description": description, "target": kinesis(role)}),
            json!({"events.ngrok.io/adopt-id": format!("ed_{:0>27}", format!("benchmissing{i}"))}),
            None,
        ),
        3 => (
            "ngrok refuses the target",
            json!({"description": format!("{description} {REFUSE_MARKER}"), "target": kinesis(role)}),
            json!({}),
            None,
        ),
        4 => (
            "description over 255 bytes (multi-byte, within maxLength)",
            json!({"description": "é".repeat(200), "target": kinesis(role)}),
            json!({}),
            None,
        ),
        _ => (
            "wrong ngrok API key in apiKeyRef",
            json!({"description": description, "target": kinesis(role),
                   "apiKeyRef": {"name": format!("{name}-key"), "key": "api-key"}}),
            json!({}),
            Some(credentials_secret(
                namespace,
                &format!("{name}-key"),
                BTreeMap::from([("api-key".into(), "not-the-right-key".into())]),
            )),
        ),
    };
    (
        kind.to_string(),
        Planned {
            namespace: namespace.into(),
            object: destination_object(namespace, &name, spec, annotations),
            secret: extra_secret.clone(),
            name,
        },
        extra_secret,
    )
}

pub async fn run_bad_input(
    config: &Config,
    bad_count: usize,
    good_count: usize,
) -> Result<BadInputReport> {
    config.say(format!("=== bad input: {bad_count} bad, {good_count} good"));
    let env = Env::start(
        config,
        Emulator::builder()
            .api_key(API_KEY)
            .latency_ms(config.latency_ms)
            .rate_limit_per_minute(0)
            .refuse_marker(REFUSE_MARKER),
    )
    .await?;
    let result = async {
        let namespaces = namespaces("badinput", 1);
        let namespace = &namespaces[0];
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        let bads: Vec<(String, Planned, Option<Secret>)> =
            (0..bad_count).map(|i| bad(namespace, i)).collect();
        let goods: Vec<Planned> = (0..good_count)
            .map(|i| good(namespace, "good", i))
            .collect();
        let mut all: Vec<Planned> = Vec::new();
        for (i, g) in goods.into_iter().enumerate() {
            all.push(g);
            if let Some((_, b, _)) = bads.get(i) {
                all.push(Planned {
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    object: b.object.clone(),
                    secret: b.secret.clone(),
                });
            }
        }
        for (_, b, _) in bads.iter().skip(good_count) {
            all.push(Planned {
                namespace: b.namespace.clone(),
                name: b.name.clone(),
                object: b.object.clone(),
                secret: b.secret.clone(),
            });
        }
        create_secrets(&env, &all).await?;
        let operator = env
            .start_operator("bad-input", &operator_args(config, config.drift_interval))
            .await?;
        let ngrok_mark = env.ngrok_mark();
        create_destinations(&env, &all).await?;
        let good_keys: Vec<String> = (0..good_count)
            .map(|i| format!("{namespace}/good-{i:05}"))
            .collect();
        let bad_keys: Vec<String> = bads.iter().map(|(_, b, _)| b.key()).collect();
        wait_all(
            &env.seen,
            &good_keys,
            "good resources Ready",
            Duration::from_secs(120),
            |o| o.ready,
        )
        .await?;
        wait_all(
            &env.seen,
            &bad_keys,
            "bad resources Stalled",
            Duration::from_secs(120),
            |o| o.stalled,
        )
        .await?;
        env.wait_idle(
            &operator,
            all.len() as f64,
            Duration::from_secs(3),
            Duration::from_secs(120),
        )
        .await?;
        let calls_first_pass = env.ngrok_since(ngrok_mark);
        let window_mark = env.ngrok_mark();
        let start = Instant::now();
        config.say(format!(
            "all settled; watching for {:?}",
            config.bad_input_window
        ));
        tokio::time::sleep(config.bad_input_window).await;
        let window_s = start.elapsed().as_secs_f64();
        let calls_in_window = env.ngrok_since(window_mark);
        operator.stop().await?;
        let seen = snapshot(&env.seen);
        let mut outcomes: Vec<BadOutcome> = Vec::new();
        for (kind, b, _) in &bads {
            let o = seen.get(&b.key()).cloned().unwrap_or_default();
            match outcomes.iter_mut().find(|x| &x.kind == kind) {
                Some(x) => {
                    x.count += 1;
                    x.stalled += o.stalled as usize;
                }
                None => outcomes.push(BadOutcome {
                    kind: kind.clone(),
                    count: 1,
                    stalled: o.stalled as usize,
                    reason: o.reason.unwrap_or_default(),
                    message: o.message.unwrap_or_default(),
                }),
            }
        }
        let good_ready = good_keys
            .iter()
            .filter(|k| seen.get(*k).is_some_and(|o| o.ready))
            .count();
        let bad_first = calls_first_pass.status_4xx;
        let bad_window = calls_in_window.status_4xx;
        let per_hour = bad_first as f64 + bad_window as f64 * 3600.0 / window_s;
        let all_stalled_with_reason = bad_keys.iter().all(|k| {
            seen.get(k).is_some_and(|o| {
                o.stalled
                    && o.reason.as_deref().is_some_and(|r| !r.is_empty())
                    && o.message.as_deref().is_some_and(|m| m.len() > 10)
            })
        });
        let checks = vec![
            check(
                "bad input: at least 25 bad resources",
                "≥ 25",
                bad_count,
                bad_count >= 25,
            ),
            check(
                "bad input: every bad resource Stalled with a reason and a message",
                bad_count,
                bad_keys
                    .iter()
                    .filter(|k| seen.get(*k).is_some_and(|o| o.stalled))
                    .count(),
                all_stalled_with_reason,
            ),
            check(
                "bad input: the good ones Ready",
                good_count,
                good_ready,
                good_ready == good_count,
            ),
            check(
                "bad input: ngrok calls by bad resources, per hour (bounded)",
                format!("≤ {} (2 per resource)", 2 * bad_count),
                format!("{per_hour:.0}"),
                per_hour <= 2.0 * bad_count as f64,
            ),
        ];
        Ok(BadInputReport {
            bad: bad_count,
            good: good_count,
            good_ready,
            outcomes,
            bad_calls_first_pass: bad_first,
            calls_first_pass,
            window_s,
            bad_calls_in_window: bad_window,
            calls_in_window,
            bad_calls_per_hour_bound: per_hour,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}

// ---------------------------------------------------------------------------------------------
// The account's budget: default client rate limit against an emulator enforcing 120/min.

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RateLimitedReport {
    pub n: usize,
    pub emulator_limit_per_minute: u32,
    pub client_limit_per_minute: u32,
    pub client_burst: u32,
    pub all_ready_s: f64,
    /// The time the client's budget allows for N calls: (N − burst) / rate.
    pub budget_s: f64,
    /// The time the account's own limit would allow: (N − 120) / 120 per minute.
    pub account_limit_s: f64,
    pub ngrok: NgrokCalls,
    pub checks: Vec<Check>,
}

pub async fn run_rate_limited(config: &Config, n: usize) -> Result<RateLimitedReport> {
    config.say(format!(
        "=== rate limited: N = {n}, emulator 120/min, default client limit"
    ));
    let env = Env::start(
        config,
        Emulator::builder()
            .api_key(API_KEY)
            .latency_ms(config.latency_ms)
            .rate_limit_per_minute(120),
    )
    .await?;
    let result = async {
        let namespaces = namespaces("ratelimited", config.namespaces);
        let planned: Vec<Planned> = (0..n)
            .map(|i| good(&namespaces[i % namespaces.len()], "ed", i))
            .collect();
        let keys: Vec<String> = planned.iter().map(Planned::key).collect();
        make_namespaces_and_noise(&env, &namespaces, 0).await?;
        create_secrets(&env, &planned).await?;
        let mut args = vec!["--drift-interval".to_string(), "10m".to_string()];
        if let Some(c) = config.concurrency {
            args.extend(["--concurrency".into(), c.to_string()]);
        }
        let operator = env
            .start_operator(&format!("ratelimited-{n}"), &args)
            .await?;
        let ngrok_mark = env.ngrok_mark();
        let start = Instant::now();
        create_destinations(&env, &planned).await?;
        wait_all(&env.seen, &keys, "Ready", Duration::from_secs(900), |o| {
            o.ready
        })
        .await?;
        let all_ready_s = start.elapsed().as_secs_f64();
        let ngrok = env.ngrok_since(ngrok_mark);
        operator.stop().await?;
        let rate = DEFAULT_RATE_LIMIT_PER_MINUTE as f64;
        let budget_s = (n as f64 - DEFAULT_RATE_LIMIT_BURST as f64).max(0.0) / rate * 60.0;
        let account_limit_s = (n as f64 - 120.0).max(0.0) / 120.0 * 60.0;
        let checks = vec![
            check(
                "rate limited: 429 responses",
                0,
                ngrok.status_429,
                ngrok.status_429 == 0,
            ),
            check(
                "rate limited: all Ready within 1.15 × the client budget",
                format!("≤ {:.1} s", 1.15 * budget_s),
                format!("{all_ready_s:.1} s"),
                all_ready_s <= 1.15 * budget_s,
            ),
        ];
        Ok(RateLimitedReport {
            n,
            emulator_limit_per_minute: 120,
            client_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            client_burst: DEFAULT_RATE_LIMIT_BURST,
            all_ready_s,
            budget_s,
            account_limit_s,
            ngrok,
            checks,
        })
    }
    .await;
    env.stop().await;
    result
}

// ---------------------------------------------------------------------------------------------
// Rendering.

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

fn calls(c: &NgrokCalls) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_histograms() {
        let text = "# HELP x\nngrok_events_operator_reconciles_total{kind=\"A\",result=\"success\"} 3\nngrok_events_operator_reconciles_total{kind=\"A\",result=\"x\"} 2\n\
ngrok_events_operator_time_to_first_ready_seconds_sum{kind=\"A\"} 3.0\n\
ngrok_events_operator_time_to_first_ready_seconds_count{kind=\"A\"} 4\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"0.5\",kind=\"A\"} 1\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"1.0\",kind=\"A\"} 3\n\
ngrok_events_operator_time_to_first_ready_seconds_bucket{le=\"+Inf\",kind=\"A\"} 4\n";
        assert_eq!(
            metric_sum(text, "ngrok_events_operator_reconciles_total"),
            5.0
        );
        let h = first_ready_histogram(text);
        assert_eq!(h.count, 4);
        assert_eq!(h.p50_le_s, 1.0);
        assert!(h.p99_le_s.is_infinite());
    }

    #[test]
    fn percentiles() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!((l.p50_ms, l.p99_ms, l.max_ms), (50.0, 99.0, 100.0));
    }
}
