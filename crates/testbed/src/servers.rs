//! Starting and stopping etcd, kube-apiserver and kube-controller-manager on loopback.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use backon::BlockingRetryable;

use crate::node::{self, NODE_NAME, Node, NodeBinaries, PAUSE_IMAGE, POD_CIDR, SERVICE_CIDR};

/// Where the server binaries are. See [`Binaries::locate`].
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    /// Optional: without it, deleted namespaces stay Terminating and ownerReferences are never
    /// collected. envtest's asset bundles do not ship it.
    pub kube_controller_manager: Option<PathBuf>,
}

impl Binaries {
    /// `ETCD` + `KUBE_APISERVER` (+ `KUBE_CONTROLLER_MANAGER`), else envtest's
    /// `KUBEBUILDER_ASSETS`, else the cache `testbed/install.sh` builds into (etcd from `PATH`).
    pub fn locate() -> Result<Self> {
        if let (Ok(etcd), Ok(apiserver)) = (std::env::var("ETCD"), std::env::var("KUBE_APISERVER"))
        {
            return Ok(Self {
                etcd: etcd.into(),
                kube_apiserver: apiserver.into(),
                kube_controller_manager: std::env::var_os("KUBE_CONTROLLER_MANAGER")
                    .map(Into::into),
            });
        }
        if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
            let dir = PathBuf::from(dir);
            return Self::in_dir(&dir, dir.join("etcd"));
        }
        let etcd = which("etcd").context("etcd is not on PATH: run testbed/install.sh")?;
        Self::in_dir(&cache_bin_dir(), etcd)
    }

    fn in_dir(dir: &Path, etcd: PathBuf) -> Result<Self> {
        let kube_apiserver = dir.join("kube-apiserver");
        if !kube_apiserver.is_file() {
            bail!(
                "no kube-apiserver in {}: run testbed/install.sh",
                dir.display()
            );
        }
        let kcm = dir.join("kube-controller-manager");
        Ok(Self {
            etcd,
            kube_apiserver,
            kube_controller_manager: kcm.is_file().then_some(kcm),
        })
    }
}

/// The directory `testbed/install.sh` builds into.
pub fn cache_bin_dir() -> PathBuf {
    if let Some(cache) = std::env::var_os("NGROK_TESTBED_CACHE") {
        return PathBuf::from(cache).join("bin");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("ngrok-events-operator/testbed/bin")
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// How to start the servers (see [`Servers::start_with`]); the default is what [`Servers::start`]
/// does.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Write an audit log (`audit.log` in [`Servers::dir`], JSON lines, level Metadata) of every
    /// request of the `operator` user (see [`Servers::operator_kubeconfig`]), so that a benchmark
    /// can count the requests an operator makes by verb and resource. Nothing else is logged.
    pub audit_operator: bool,
    /// Also run a node (see [`crate::node`]): containerd, kube-scheduler, kube-proxy and a
    /// kubelet; the API server then listens on the machine's address so that pods reach it.
    pub node: bool,
}

/// Name of the second static-token user (group `system:masters`), for an operator whose
/// requests must be told apart from the harness's own.
pub const OPERATOR_USER: &str = "operator";

/// A running etcd + kube-apiserver (+ kube-controller-manager). Dropping it stops them and
/// removes their data.
pub struct Servers {
    children: Vec<(&'static str, Child)>,
    kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    audit_log: Option<PathBuf>,
    api_url: String,
    node: Option<(NodeBinaries, Node)>,
    dir: tempfile::TempDir,
}

/// The bearer token of the test bed's administrator (group `system:masters`).
const ADMIN_TOKEN_PREFIX: &str = "testbed-admin";

impl Servers {
    /// Starts the servers and returns once the API server answers `/readyz`.
    pub fn start(binaries: &Binaries) -> Result<Self> {
        Self::start_with(binaries, &Options::default())
    }

    /// [`Servers::start`] with [`Options`].
    pub fn start_with(binaries: &Binaries, options: &Options) -> Result<Self> {
        // etcd fsyncs on every write; tmpfs makes that free and the test bed is throwaway.
        let parent = Path::new("/dev/shm");
        let dir = if parent.is_dir() {
            tempfile::Builder::new()
                .prefix("testbed-")
                .tempdir_in(parent)?
        } else {
            tempfile::Builder::new().prefix("testbed-").tempdir()?
        };
        fs::write(dir.path().join("owner.pid"), std::process::id().to_string())?;
        let mut servers = Servers {
            children: Vec::new(),
            kubeconfig: dir.path().join("kubeconfig"),
            operator_kubeconfig: dir.path().join("kubeconfig-operator"),
            audit_log: options.audit_operator.then(|| dir.path().join("audit.log")),
            api_url: String::new(),
            node: None,
            dir,
        };
        if options.node {
            let node = Node::new(servers.dir.path(), node::host_ip()?)?;
            servers.node = Some((NodeBinaries::locate()?, node));
        }
        servers.start_all(binaries)?;
        if servers.node.is_some() {
            servers.start_node()?;
        }
        Ok(servers)
    }

    fn start_all(&mut self, binaries: &Binaries) -> Result<()> {
        let dir = self.dir.path().to_path_buf();
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        self.spawn(
            "etcd",
            Command::new(&binaries.etcd).args([
                "--name=testbed",
                &format!("--data-dir={}", dir.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=testbed={peer_url}"),
            ]),
        )?;

        let token = format!("{ADMIN_TOKEN_PREFIX}-{:016x}", rand::random::<u64>());
        let operator_token = format!("{OPERATOR_USER}-{:016x}", rand::random::<u64>());
        fs::write(
            dir.join("tokens.csv"),
            format!(
                "{token},testbed-admin,1,system:masters\n{operator_token},{OPERATOR_USER},2,system:masters\n"
            ),
        )?;
        let mut audit_args = Vec::new();
        if let Some(log) = &self.audit_log {
            let policy = dir.join("audit-policy.yaml");
            fs::write(
                &policy,
                format!(
                    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  users: [{OPERATOR_USER}]\n- level: None\n"
                ),
            )?;
            audit_args.push(format!("--audit-policy-file={}", policy.display()));
            audit_args.push(format!("--audit-log-path={}", log.display()));
            audit_args.push("--audit-log-format=json".into());
            audit_args.push("--audit-log-maxsize=0".into());
        }
        let sa_key = dir.join("sa.key");
        let status = Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&sa_key)
            .arg("2048")
            .stderr(Stdio::null())
            .status()
            .context("openssl is needed to make the service-account key")?;
        if !status.success() {
            bail!("openssl genrsa failed");
        }
        // With a node, pods reach the API server through the `kubernetes` Service, whose
        // endpoint is the advertised address: the machine's, not loopback.
        let (bind, advertise) = match &self.node {
            Some((_, node)) => ("0.0.0.0".to_string(), node.ip.to_string()),
            None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
        };
        self.spawn(
            "kube-apiserver",
            Command::new(&binaries.kube_apiserver)
                .args([
                    &format!("--etcd-servers={etcd_url}"),
                    &format!("--bind-address={bind}"),
                    &format!("--advertise-address={advertise}"),
                    &format!("--secure-port={api_port}"),
                    "--insecure-port=0",
                    &format!("--cert-dir={}", dir.join("certs").display()),
                    &format!("--token-auth-file={}", dir.join("tokens.csv").display()),
                    "--authorization-mode=RBAC",
                    &format!("--service-account-key-file={}", sa_key.display()),
                    &format!("--service-account-signing-key-file={}", sa_key.display()),
                    "--service-account-issuer=https://testbed.local",
                    &format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                    "--kubelet-preferred-address-types=InternalIP",
                ])
                .args(&audit_args),
        )?;
        self.api_url = format!("https://127.0.0.1:{api_port}");
        fs::write(
            &self.operator_kubeconfig,
            kubeconfig_yaml(&self.api_url, &operator_token).replace("testbed-admin", OPERATOR_USER),
        )?;
        fs::write(&self.kubeconfig, kubeconfig_yaml(&self.api_url, &token))?;
        self.wait_ready(Duration::from_secs(90))?;

        if let Some(kcm) = &binaries.kube_controller_manager {
            let mut command = Command::new(kcm);
            command.args([
                &format!("--kubeconfig={}", self.kubeconfig.display()),
                "--leader-elect=false",
                "--secure-port=0",
                "--port=0",
            ]);
            if self.node.is_some() {
                // What pods need: ServiceAccounts and their tokens' CA (root-ca publisher),
                // Deployments, Jobs (the chart's uninstall drain), the node's not-ready taint
                // lifted, Service endpoints.
                command.args([
                    "--controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token,\
                     deployment,replicaset,job,nodelifecycle,root-ca-cert-publisher,endpoint,\
                     endpointslice,podgc,resourcequota",
                    &format!("--service-account-private-key-file={}", sa_key.display()),
                    &format!("--root-ca-file={}", self.api_ca().display()),
                ]);
            } else {
                // resourcequota: a ResourceQuota is enforced only once its controller has
                // counted what the namespace holds (the README's quota example is tested).
                command.arg("--controllers=namespace,garbagecollector,resourcequota");
            }
            self.spawn("kube-controller-manager", &mut command)?;
        }
        Ok(())
    }

    /// The CA of the API server's self-signed certificate (which names the machine's address
    /// and the `kubernetes` Service's): the chain the API server writes, leaf then CA.
    fn api_ca(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    /// Keeps the pods' traffic on the machine, starts containerd (and imports the images),
    /// kube-scheduler, kube-proxy and the kubelet, and returns once the node is Ready and
    /// schedulable.
    fn start_node(&mut self) -> Result<()> {
        let Some((binaries, node)) = &self.node else {
            return Ok(());
        };
        let (binaries, containerd_config) = (binaries.clone(), node.containerd_config()?);
        let (kubelet_config, _) = node.kubelet_config()?;
        let (socket, node_dir, ip) = (node.containerd_socket(), node.dir.clone(), node.ip);
        let kubeconfig = format!("--kubeconfig={}", self.kubeconfig.display());
        // Before the first pod: none of them ever sends a packet off the machine.
        node::keep_pod_traffic_on_machine()?;
        self.spawn(
            "containerd",
            Command::new(&binaries.containerd)
                .arg("--config")
                .arg(&containerd_config),
        )?;
        let mut images: Vec<PathBuf> = fs::read_dir(&binaries.images)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tar"))
            .collect();
        images.sort();
        if let Some((_, node)) = &self.node {
            node.import_images(&binaries.ctr, &images)?;
        }
        self.spawn(
            "kube-scheduler",
            Command::new(&binaries.kube_scheduler).args([
                kubeconfig.as_str(),
                "--leader-elect=false",
                "--port=0",
                "--secure-port=0",
            ]),
        )?;
        // oom-score-adj 0 and no conntrack sysctls: this machine refuses the former, and a
        // test node needs neither.
        self.spawn(
            "kube-proxy",
            Command::new(&binaries.kube_proxy).args([
                kubeconfig.as_str(),
                &format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables",
                &format!("--cluster-cidr={POD_CIDR}"),
                "--oom-score-adj=0",
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                &format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
                &format!("--healthz-bind-address=127.0.0.1:{}", free_port()?),
            ]),
        )?;
        self.spawn(
            "kubelet",
            Command::new(&binaries.kubelet).args([
                kubeconfig.as_str(),
                &format!("--config={}", kubelet_config.display()),
                "--container-runtime=remote",
                &format!("--container-runtime-endpoint=unix://{}", socket.display()),
                &format!("--root-dir={}", node_dir.join("kubelet").display()),
                &format!("--cert-dir={}", node_dir.join("kubelet-pki").display()),
                &format!("--hostname-override={NODE_NAME}"),
                &format!("--node-ip={ip}"),
                &format!("--pod-infra-container-image={PAUSE_IMAGE}"),
                "--oom-score-adj=0",
            ]),
        )?;
        self.wait_node_ready(Duration::from_secs(120))
    }

    /// Polls until the node is Ready and no longer carries a NoSchedule/NoExecute taint.
    fn wait_node_ready(&mut self, timeout: Duration) -> Result<()> {
        use k8s_openapi::api::core::v1::Node as KubeNode;
        let (ready, node) = self.poll(
            timeout,
            Duration::from_millis(500),
            async |client| {
                kube::Api::<KubeNode>::all(client)
                    .get_opt(NODE_NAME)
                    .await
                    .ok()
                    .flatten()
            },
            |node| {
                let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
                let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
                conditions
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    && taints.is_none_or(|ts| ts.iter().all(|t| t.effect == "PreferNoSchedule"))
            },
        )?;
        if !ready {
            bail!(
                "node {NODE_NAME} not Ready after {timeout:?} (last state: {:?}); logs in {}",
                node.and_then(|n| n.status).and_then(|s| s.conditions),
                self.dir.path().display()
            );
        }
        Ok(())
    }

    /// Asks `probe` every `every`, with a fresh client of the test bed, until `done` holds for
    /// its answer or `timeout` passed; fails at once when a server exits. Returns whether `done`
    /// held, and the last answer.
    fn poll<T>(
        &mut self,
        timeout: Duration,
        every: Duration,
        probe: impl AsyncFn(kube::Client) -> Option<T>,
        done: impl Fn(&T) -> bool,
    ) -> Result<(bool, Option<T>)> {
        /// Why one probe did not end the wait.
        enum Miss<T> {
            /// `done` does not hold for this answer (or there was none) yet.
            NotYet(Option<T>),
            /// A server exited: no point waiting.
            Failed(anyhow::Error),
        }
        let deadline = Instant::now() + timeout;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let kubeconfig = self.kubeconfig.clone();
        let outcome = (|| {
            self.check_children().map_err(Miss::Failed)?;
            let answer = runtime.block_on(async {
                let client = crate::client_from_kubeconfig(&kubeconfig).await.ok()?;
                probe(client).await
            });
            match answer {
                Some(answer) if done(&answer) => Ok(answer),
                answer => Err(Miss::NotYet(answer)),
            }
        })
        .retry(crate::every(every))
        .when(|miss| matches!(miss, Miss::NotYet(_)) && Instant::now() <= deadline)
        .call();
        match outcome {
            Ok(answer) => Ok((true, Some(answer))),
            Err(Miss::NotYet(last)) => Ok((false, last)),
            Err(Miss::Failed(error)) => Err(error),
        }
    }

    fn check_children(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited with {status}; see its log: {}",
                    self.dir.path().join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) -> Result<()> {
        let log = fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        kill_with_parent(command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.children.push((name, child));
        Ok(())
    }

    /// Polls `/readyz` until the API server, its RBAC bootstrap and its CRD handling are up.
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let (ready, _) = self.poll(
            timeout,
            Duration::from_millis(200),
            async |client| {
                let req = http::Request::get("/readyz").body(Vec::new()).ok()?;
                client.request_text(req).await.ok()
            },
            |text| text == "ok",
        )?;
        if !ready {
            bail!(
                "kube-apiserver not ready after {timeout:?}; logs in {}",
                self.dir.path().display()
            );
        }
        Ok(())
    }

    /// The kubeconfig of the test bed's administrator.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig of the `operator` user (also `system:masters`), whose requests the audit
    /// log of [`Options::audit_operator`] records.
    pub fn operator_kubeconfig(&self) -> &Path {
        &self.operator_kubeconfig
    }

    /// The audit log, when started with [`Options::audit_operator`].
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// `https://127.0.0.1:<port>` of the API server.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// Where the servers keep their data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The machine's address, where pods reach the API server and the host (with a node).
    pub fn node_ip(&self) -> Option<std::net::IpAddr> {
        self.node.as_ref().map(|(_, node)| node.ip)
    }

    /// Imports an image archive (`docker save` format) into the node's containerd, for pods
    /// with `imagePullPolicy: IfNotPresent` or `Never`.
    pub fn import_image(&self, archive: &Path) -> Result<()> {
        let (binaries, node) = self
            .node
            .as_ref()
            .context("this test bed has no node (start it with Options::node)")?;
        node::import_image(&binaries.ctr, &node.containerd_socket(), archive)
    }

    /// Keeps the data directory after the servers stop (for a person to read the logs).
    pub fn keep_dir(mut self) -> PathBuf {
        self.shutdown();
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    /// Stops the node's programs first, then what containerd runs (and removes the node's
    /// iptables rules), then the rest; finally unmounts what the node mounted below the data
    /// directory.
    fn shutdown(&mut self) {
        let mut children = std::mem::take(&mut self.children);
        if let Some((binaries, node)) = &self.node {
            let containerd = children.iter().position(|(name, _)| *name == "containerd");
            if let Some(at) = containerd {
                stop(children.split_off(at + 1));
                node::remove_workloads(binaries, &node.containerd_socket());
            }
            node::remove_egress_rules();
        }
        stop(children);
        if self.node.is_some() {
            node::unmount_below(self.dir.path());
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Stops in reverse start order: the controller manager and API server before etcd.
fn stop(children: Vec<(&'static str, Child)>) {
    for (_, mut child) in children.into_iter().rev() {
        // SIGTERM first so the API server closes its watches cleanly, then SIGKILL.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        crate::poll_blocking(Duration::from_millis(50), Duration::from_secs(5), || {
            child.try_wait().ok().flatten()
        });
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// On Linux, the server dies with the thread that started it, so a test process that is
/// killed (or a test runner that times out) never leaves servers behind.
fn kill_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

/// Removes data directories of test beds whose process is gone. A process-wide test bed is never
/// dropped (statics are not), so its directory outlives it; the next one cleans up.
pub fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_testbed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("testbed-"));
        let owner = fs::read_to_string(path.join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if is_testbed && owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn kubeconfig_yaml(server: &str, token: &str) -> String {
    // The API server's certificate is self-signed for this run only; skipping verification
    // on loopback is what envtest does too.
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: testbed-admin
  user:
    token: {token}
contexts:
- name: testbed
  context:
    cluster: testbed
    user: testbed-admin
current-context: testbed
"
    )
}
