//! The environment one scenario runs against: a fresh test bed (etcd, kube-apiserver with the
//! audit log of the `operator` user, kube-controller-manager) held by a thread of its own, the
//! in-process ngrok emulator, the bench's watch of the resources, and the operator binary
//! started as a child process with the flags of a scenario ([`operator_args`]). [`Env`] also
//! answers "what happened since a mark" (ngrok calls, audit-log offsets) and waits until the
//! operator is idle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use backon::Retryable;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use ngrok_api_emulator::{Emulator, EmulatorBuilder, EmulatorHandle};

use crate::counting::{Audit, NgrokCalls, metric_sum};
use crate::measurement::proc_status_kib;
use crate::watch::{Seen, spawn_watch};
use crate::{API_KEY, Config};

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
pub(crate) struct Env {
    pub(crate) config: Config,
    pub(crate) bed: TestBed,
    pub(crate) client: kube::Client,
    pub(crate) emulator: EmulatorHandle,
    pub(crate) audit: Audit,
    pub(crate) seen: Seen,
    watch: tokio::task::JoinHandle<()>,
    resource: ApiResource,
}

impl Env {
    pub(crate) async fn start(
        config: &Config,
        emulator: ngrok_api_emulator::EmulatorBuilder,
    ) -> Result<Self> {
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

    pub(crate) async fn stop(self) {
        self.watch.abort();
        self.emulator.shutdown().await;
        let bed = self.bed;
        let _ = tokio::task::spawn_blocking(move || drop(bed)).await;
    }

    pub(crate) fn destinations(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &self.resource)
    }

    pub(crate) async fn start_operator(&self, label: &str, args: &[String]) -> Result<Operator> {
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
    pub(crate) fn ngrok_since(&self, mark: usize) -> NgrokCalls {
        let requests = self.emulator.requests();
        NgrokCalls::of(&requests[mark.min(requests.len())..])
    }

    pub(crate) fn ngrok_mark(&self) -> usize {
        self.emulator.requests().len()
    }

    /// Waits until the operator is idle: no ngrok call, no Kubernetes request of the operator
    /// and no reconcile for `quiet`, and at least `min_reconciles` reconciles counted.
    pub(crate) async fn wait_idle(
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
pub(crate) struct Operator {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    metrics_url: String,
    http: reqwest::Client,
    pub(crate) started: Instant,
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

    pub(crate) async fn metrics(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    pub(crate) async fn reconciles(&self) -> Result<f64> {
        Ok(metric_sum(
            &self.metrics().await?,
            "ngrok_events_operator_reconciles_total",
        ))
    }

    /// Peak resident set size so far, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmHWM")
    }

    /// SIGTERM, then waits for the exit (in-flight reconciles finish first).
    pub(crate) async fn stop(mut self) -> Result<()> {
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

/// The operator's flags in the standard, fault and bad-input runs: no client rate limit, the
/// given drift interval, `--concurrency` when the harness sets one.
pub(crate) fn operator_args(config: &Config, drift: Duration) -> Vec<String> {
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

/// The emulator every run starts from: the bench's API key, the configured latency, and ngrok's
/// rate limit `per_minute` (0: none); a run adds its faults to it.
pub(crate) fn emulator(config: &Config, per_minute: u32) -> EmulatorBuilder {
    Emulator::builder()
        .api_key(API_KEY)
        .latency_ms(config.latency_ms)
        .rate_limit_per_minute(per_minute)
}
