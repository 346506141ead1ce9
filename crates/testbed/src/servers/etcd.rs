//! etcd, the API server's store: one member on loopback, its data in the test bed's data
//! directory (on tmpfs where there is one).

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::Servers;

impl Servers {
    /// Starts etcd serving clients on `client_port` and its peer on `peer_port`; returns the
    /// URL clients reach it at.
    pub(super) fn start_etcd(
        &mut self,
        etcd: &Path,
        client_port: u16,
        peer_port: u16,
    ) -> Result<String> {
        let dir = self.dir.path().to_path_buf();
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        self.spawn(
            "etcd",
            Command::new(etcd).args([
                "--name=testbed",
                &format!("--data-dir={}", dir.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=testbed={peer_url}"),
            ]),
        )?;
        Ok(etcd_url)
    }
}
