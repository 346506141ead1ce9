//! Starting and stopping etcd, kube-apiserver and kube-controller-manager on loopback.
//!
//! [`Servers`] owns the running processes and their data directory, and starts them in order;
//! how each server is started lives in a module of its own (`etcd`, `kube_apiserver`,
//! `kube_controller_manager`, and `node_processes` for the optional node), so that one
//! server's flags read without the others'. What every process shares (a log each, dying with
//! its parent, polling while watching for exits, stopping) is in `processes`; where the
//! binaries are, in `binaries`.

mod binaries;
mod etcd;
mod kube_apiserver;
mod kube_controller_manager;
mod node_processes;
mod processes;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::{Context, Result};

pub(crate) use binaries::which;
pub use binaries::{Binaries, cache_bin_dir};
use processes::stop;

use crate::node::{self, Node, NodeBinaries};

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

    /// Starts etcd, then the API server (returning once it is ready), then the controller
    /// manager if there is one.
    fn start_all(&mut self, binaries: &Binaries) -> Result<()> {
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = self.start_etcd(&binaries.etcd, etcd_port, peer_port)?;
        self.start_kube_apiserver(&binaries.kube_apiserver, &etcd_url, api_port)?;
        if let Some(kcm) = &binaries.kube_controller_manager {
            self.start_kube_controller_manager(kcm)?;
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
