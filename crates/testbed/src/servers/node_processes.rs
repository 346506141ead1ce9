//! The node's processes, when the test bed has one ([`Options::node`](super::Options::node)):
//! containerd (with the images imported), kube-scheduler, kube-proxy and the kubelet, started
//! after the control plane. What they are configured with is [`crate::node`]'s business;
//! this is only starting them and waiting for the node.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{Servers, free_port};
use crate::node::{self, NODE_NAME, PAUSE_IMAGE, POD_CIDR};

impl Servers {
    /// Keeps the pods' traffic on the machine, starts containerd (and imports the images),
    /// kube-scheduler, kube-proxy and the kubelet, and returns once the node is Ready and
    /// schedulable.
    pub(super) fn start_node(&mut self) -> Result<()> {
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
}
