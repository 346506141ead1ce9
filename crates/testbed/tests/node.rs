//! The node tier: `Options::node` gives a node that registers Ready, and a pod runs on it with
//! the sandbox image built here (nothing pulled) and gets an address from the pod range.
//! Needs root and `testbed/install.sh --with-node`, and is machine-wide (one node at a time):
//! ignored by default, run by `scripts/test-node.sh` (`--run-ignored only`).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use testbed::node::{NODE_NAME, PAUSE_IMAGE};
use testbed::servers::Options;
use testbed::{Binaries, Servers};

#[test]
#[ignore = "needs root and testbed/install.sh --with-node; run by scripts/test-node.sh"]
fn a_node_registers_ready_and_runs_a_pod() -> anyhow::Result<()> {
    testbed::servers::remove_stale_dirs();
    let options = Options {
        node: true,
        ..Options::default()
    };
    let servers = Servers::start_with(&Binaries::locate()?, &options)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = testbed::client_from_kubeconfig(servers.kubeconfig()).await?;
        let node = Api::<Node>::all(client.clone()).get(NODE_NAME).await?;
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        let ip = servers.node_ip().map(|ip| ip.to_string());
        assert!(
            addresses
                .iter()
                .any(|a| a.type_ == "InternalIP" && Some(&a.address) == ip.as_ref()),
            "the node is at the machine's address: {addresses:?}"
        );

        let ns = testbed::namespace(&client, "node").await?;
        // The serviceaccount and token controllers run: a pod can be admitted once the
        // namespace's default ServiceAccount has its token (Kubernetes 1.20 refuses the pod
        // until then).
        testbed::wait_for(
            &Api::<ServiceAccount>::namespaced(client.clone(), &ns),
            "default",
            |sa: Option<&ServiceAccount>| {
                sa.and_then(|sa| sa.secrets.as_ref())
                    .is_some_and(|secrets| !secrets.is_empty())
            },
            Duration::from_secs(60),
        )
        .await?;
        let pods = Api::<Pod>::namespaced(client.clone(), &ns);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pause"},
            "spec": {
                "containers": [{
                    "name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never",
                    "securityContext": {"runAsUser": 65535, "readOnlyRootFilesystem": true,
                                        "capabilities": {"drop": ["ALL"]}},
                    // Guaranteed: the kubelet asks for a negative oom_score_adj for the
                    // container as for every sandbox, which some machines refuse.
                    "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
                }],
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            }
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
        let running = testbed::wait_for(
            &pods,
            "pause",
            |p: Option<&Pod>| {
                p.and_then(|p| p.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            },
            Duration::from_secs(120),
        )
        .await?;
        let pod_ip = running.status.and_then(|s| s.pod_ip).unwrap_or_default();
        assert!(
            pod_ip.starts_with("10.89."),
            "a pod address from the bridge: {pod_ip}"
        );
        testbed::delete_namespace(&client, &ns).await;
        anyhow::Ok(())
    })
}
