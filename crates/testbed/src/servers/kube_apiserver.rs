//! kube-apiserver: static-token users (the administrator and the `operator` user), an
//! optional audit log of the operator's requests, a service-account key, and the kubeconfigs
//! that reach it. Its flags and the files it reads are the test bed's main interface, so they
//! live together here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{OPERATOR_USER, Servers};
use crate::node::SERVICE_CIDR;

/// The bearer token of the test bed's administrator (group `system:masters`).
const ADMIN_TOKEN_PREFIX: &str = "testbed-admin";

impl Servers {
    /// Starts the API server on `api_port`, storing in etcd at `etcd_url`, writes the
    /// kubeconfigs and returns once it is ready.
    pub(super) fn start_kube_apiserver(
        &mut self,
        kube_apiserver: &Path,
        etcd_url: &str,
        api_port: u16,
    ) -> Result<()> {
        let dir = self.dir.path().to_path_buf();
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
        let sa_key = self.service_account_key();
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
            Command::new(kube_apiserver)
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
        Ok(())
    }

    /// The key that signs service-account tokens (the API server checks them with it, the
    /// controller manager signs with it).
    pub(super) fn service_account_key(&self) -> PathBuf {
        self.dir.path().join("sa.key")
    }

    /// The CA of the API server's self-signed certificate (which names the machine's address
    /// and the `kubernetes` Service's): the chain the API server writes, leaf then CA.
    pub(super) fn api_ca(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
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
