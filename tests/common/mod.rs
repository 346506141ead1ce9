//! Shared set-up of the integration tests: the cluster, the CRDs, a namespace per test.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;

use anyhow::Result;
use kube::Client;
use tokio::sync::OnceCell;

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A client, with the committed CRDs installed (once per process), and a fresh namespace.
/// Installing the committed files, not the in-memory types, tests what users install.
pub async fn cluster_with_namespace(prefix: &str) -> Result<(Client, String)> {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = testbed::client().await?;
    CRDS.get_or_try_init(|| async {
        for (file, _) in ngrok_events_operator::crd::files() {
            let yaml = std::fs::read_to_string(repo_path("crds").join(file))?;
            testbed::install_crds(&client, &yaml).await?;
        }
        anyhow::Ok(())
    })
    .await?;
    let namespace = testbed::namespace(&client, prefix).await?;
    Ok((client, namespace))
}
