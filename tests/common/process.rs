//! The operator as a separate process: the `ngrok-events-operator` binary started against the
//! test bed and an in-process emulator, stopped with real signals.
//!
//! Every process is started with `kill_on_drop`, so it dies with the test even when an
//! assertion fails first. Its stdout and stderr go to files under a directory of the test's
//! own, so that a failure message can show the operator's last log lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};

/// The operator binary Cargo built for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_ngrok-events-operator");

/// A directory for one test's process logs, under Cargo's scratch space for integration
/// tests (`target/tmp`), emptied first.
pub fn log_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("operator-processes")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the log directory");
    dir
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The kubeconfig of the test bed, for processes (starts this process's test bed if needed).
pub async fn kubeconfig() -> PathBuf {
    tokio::task::spawn_blocking(testbed::kubeconfig)
        .await
        .expect("kubeconfig task")
        .expect("test bed kubeconfig")
}

/// How to start one operator process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Names the log files: `<label>.stdout`, `<label>.stderr`.
    pub label: String,
    pub log_dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub api_url: String,
    /// The operator-wide key, in env NGROK_API_KEY; empty: none (`--api-key-file` in
    /// `extra_args`, or no key at all).
    pub api_key: String,
    /// The one namespace to watch; empty: every namespace.
    pub namespace: String,
    pub metrics_addr: SocketAddr,
    /// `run` arguments after the common ones (`--leader-elect`, ...).
    pub extra_args: Vec<String>,
}

/// A running (or exited) operator process.
pub struct OperatorProcess {
    pub label: String,
    pub metrics_addr: SocketAddr,
    pub pid: u32,
    stderr_path: PathBuf,
    child: tokio::process::Child,
    http: reqwest::Client,
}

impl OperatorProcess {
    /// Starts `ngrok-events-operator run` with JSON logs, the API rate limiter off (unless
    /// `extra_args` set `--api-rate-limit`), and `--api-url`, `--namespace`, `--metrics-addr`
    /// from `spec`.
    pub fn spawn(spec: &Spec) -> Result<Self> {
        let stdout_path = spec.log_dir.join(format!("{}.stdout", spec.label));
        let stderr_path = spec.log_dir.join(format!("{}.stderr", spec.label));
        let stdout = std::fs::File::create(&stdout_path)?;
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut command = tokio::process::Command::new(BINARY);
        command.arg("run");
        if !spec.namespace.is_empty() {
            command.args(["--namespace", &spec.namespace]);
        }
        command
            .args(["--api-url", &spec.api_url])
            .args(["--metrics-addr", &spec.metrics_addr.to_string()])
            .args(["--log-format", "json"]);
        if !spec.extra_args.iter().any(|arg| arg == "--api-rate-limit") {
            command.args(["--api-rate-limit", "0"]);
        }
        command
            .args(&spec.extra_args)
            .env("NGROK_API_KEY", &spec.api_key)
            .env("KUBECONFIG", &spec.kubeconfig)
            // Nothing from the test's own environment may change the flags' meaning.
            .env_remove("NGROK_API_URL")
            .env_remove("NGROK_API_KEY_FILE")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("POD_NAMESPACE")
            .env_remove("LOG_LEVEL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {BINARY}"))?;
        let pid = child.id().context("pid of a process just started")?;
        Ok(OperatorProcess {
            label: spec.label.clone(),
            metrics_addr: spec.metrics_addr,
            pid,
            stderr_path,
            child,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// `GET <path>` on the metrics address: status and body, `None` if nothing answers.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("http://{}{path}", self.metrics_addr))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Waits until `GET <path>` answers 200.
    pub async fn wait_http_ok(&mut self, path: &str, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(status) = self.try_exit_status()? {
                bail!(
                    "{} exited ({status}) while waiting for {path} to answer 200\n{}",
                    self.label,
                    self.log_tail(40)
                );
            }
            last = self.get(path).await.or(last);
            if last.as_ref().is_some_and(|(status, _)| *status == 200) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{path} of {} did not answer 200 within {within:?} (last answer {last:?})\n{}",
                    self.label,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/metrics` text; empty if it cannot be fetched.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await {
            Some((200, body)) => body,
            _ => String::new(),
        }
    }

    /// Sends SIGTERM, as the kubelet does to stop a pod.
    pub fn sigterm(&self) -> Result<()> {
        signal(self.pid, "TERM")
    }

    /// Kills the process with SIGKILL (a crash, an OOM kill, a node going away) and reaps it.
    pub async fn sigkill(&mut self) -> Result<ExitStatus> {
        self.child.start_kill()?;
        Ok(self.child.wait().await?)
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => Err(anyhow!(
                "{} did not exit within {within:?}\n{}",
                self.label,
                self.log_tail(40)
            )),
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Every line the process wrote to stderr so far (its logs).
    pub fn log_lines(&self) -> Vec<String> {
        read_lines(&self.stderr_path)
    }

    /// The log lines as JSON objects, with the lines that are not JSON objects as errors.
    pub fn json_logs(&self) -> Vec<Result<serde_json::Map<String, serde_json::Value>, String>> {
        self.log_lines()
            .into_iter()
            .map(|line| match serde_json::from_str(&line) {
                Ok(serde_json::Value::Object(object)) => Ok(object),
                _ => Err(line),
            })
            .collect()
    }

    /// The last `n` log lines, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.label, &self.stderr_path, n)
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The last `n` lines of a log file, headed by its label.
pub fn tail(label: &str, path: &Path, n: usize) -> String {
    let lines = read_lines(path);
    let start = lines.len().saturating_sub(n);
    format!(
        "--- last {} log lines of {label} ({}) ---\n{}",
        lines.len() - start,
        path.display(),
        lines[start..].join("\n")
    )
}

/// Sends a signal by name (`TERM`, `KILL`) with kill(1).
pub fn signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("running kill(1)")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed: {status}");
    }
    Ok(())
}
