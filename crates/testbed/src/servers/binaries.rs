//! Where the server binaries are: named by environment variables, in envtest's asset
//! directory, or in the cache `testbed/install.sh` builds into. Kept apart from starting them
//! because `testbed locate` and the node's binaries use the same search.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

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
