//! The node tier: `Options::node` gives a node that registers Ready at the machine's address; a
//! pod runs on it with the sandbox image built here (nothing pulled) and gets an address from
//! the pod range; and pods' traffic stays on the machine: a pod reaches the node's address, and
//! its connection to an outside address is refused at once.
//! Needs root and `testbed/install.sh --with-node`, and is machine-wide (one node at a time):
//! ignored by default, run by `scripts/test-node.sh` (`--run-ignored only`). One test, one node
//! test bed: nextest runs tests as parallel processes, and two node test beds cannot share the
//! machine.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{LogParams, PostParams};
use kube::{Api, Client};
use testbed::node::{NODE_NAME, PAUSE_IMAGE};
use testbed::servers::Options;
use testbed::{Binaries, Servers};

/// An address off the machine: TEST-NET-3 (RFC 5737), documentation only, never a real host.
const OUTSIDE: &str = "203.0.113.1";
/// The image of the connection probe, built by [`bash_image`].
const PROBE_IMAGE: &str = "localhost/testbed/bash:probe";
/// A dropped packet makes a TCP connection wait for retransmissions (the first after one
/// second, giving up after about two minutes); a refusal answers within milliseconds.
const AT_ONCE: Duration = Duration::from_secs(1);

#[test]
#[ignore = "needs root and testbed/install.sh --with-node; run by scripts/test-node.sh"]
fn a_node_runs_pods_and_keeps_their_traffic_on_the_machine() -> anyhow::Result<()> {
    testbed::servers::remove_stale_dirs();
    let options = Options {
        node: true,
        ..Options::default()
    };
    let servers = Servers::start_with(&Binaries::locate()?, &options)?;
    let images = tempfile::tempdir()?;
    servers.import_image(&bash_image(images.path())?)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = testbed::client_from_kubeconfig(servers.kubeconfig()).await?;
        let node_ip = servers.node_ip().context("a test bed with a node")?;
        let node = Api::<Node>::all(client.clone()).get(NODE_NAME).await?;
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        assert!(
            addresses
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == node_ip.to_string()),
            "the node is at the machine's address: {addresses:?}"
        );
        a_pod_runs(&client).await?;
        let api_port = servers
            .api_url()
            .rsplit(':')
            .next()
            .context("the API server's URL names its port")?
            .parse()?;
        pods_reach_the_node_and_nothing_outside(&client, node_ip, api_port).await
    })
}

async fn a_pod_runs(client: &Client) -> anyhow::Result<()> {
    let ns = namespace_admitting_pods(client, "node").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let pod = pod("pause", PAUSE_IMAGE, 65535, serde_json::Value::Null)?;
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
    testbed::delete_namespace(client, &ns).await;
    Ok(())
}

/// A pod connects to an outside address, which the machine routes to its default gateway, and
/// to the API server at the node's address. The first is refused at once, by the test bed's
/// rule (its counter moves), not by a timeout; the second connects.
async fn pods_reach_the_node_and_nothing_outside(
    client: &Client,
    node_ip: IpAddr,
    api_port: u16,
) -> anyhow::Result<()> {
    let route = Command::new("ip")
        .args(["route", "get", OUTSIDE])
        .output()?;
    let route = String::from_utf8_lossy(&route.stdout);
    ensure!(
        route.contains(" via "),
        "the machine routes {OUTSIDE} to a gateway, as it would any outside address: {route}"
    );

    let ns = namespace_admitting_pods(client, "node-egress").await?;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    // One TCP connection per target with bash's /dev/tcp; prints the target's name, the
    // milliseconds the attempt took and its outcome ("connected" or the error's reason).
    let script = r#"
probe() {
  local start=${EPOCHREALTIME/./} outcome=connected error
  if ! error=$( { exec 3<>"/dev/tcp/$2/$3"; } 2>&1 ); then outcome=${error##*: }; fi
  echo "$1 $(( (${EPOCHREALTIME/./} - start) / 1000 )) $outcome"
}
probe outside "$1" "$2"
probe node "$3" "$4"
"#;
    let command = serde_json::json!({
        "command": ["/bin/bash", "-c", script, "probe",
                    OUTSIDE, "443", node_ip.to_string(), api_port.to_string()],
    });
    let refused_before = testbed::node::refused_egress_packets()?;
    pods.create(
        &PostParams::default(),
        &pod("probe", PROBE_IMAGE, 65534, command)?,
    )
    .await?;
    testbed::wait_for(
        &pods,
        "probe",
        |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
        },
        Duration::from_secs(120),
    )
    .await
    .context("the probe did not finish: a connection whose packets leave the machine hangs")?;
    let log = pods.logs("probe", &LogParams::default()).await?;
    let outcome = |target: &str| -> anyhow::Result<(Duration, String)> {
        let line = log
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{target} ")))
            .with_context(|| format!("no line for {target} in the probe's log: {log}"))?;
        let (millis, outcome) = line.split_once(' ').context("<millis> <outcome>")?;
        Ok((Duration::from_millis(millis.parse()?), outcome.to_string()))
    };

    let (took, outside) = outcome("outside")?;
    assert_eq!(
        outside, "Connection refused",
        "a connection to {OUTSIDE}:443 from a pod is refused"
    );
    assert!(
        took < AT_ONCE,
        "refused at once, not after a timeout: {took:?}"
    );
    let refused_after = testbed::node::refused_egress_packets()?;
    assert!(
        refused_after > refused_before,
        "the test bed's rule refused it ({refused_before} packets refused before, {refused_after} after)"
    );
    let (_, node) = outcome("node")?;
    assert_eq!(
        node, "connected",
        "a pod reaches the API server at the node's address {node_ip}:{api_port}"
    );
    testbed::delete_namespace(client, &ns).await;
    Ok(())
}

/// A namespace of its own whose pods are admitted: Kubernetes 1.20 refuses a pod until the
/// namespace's default ServiceAccount has its token (the serviceaccount and token controllers
/// make both).
async fn namespace_admitting_pods(client: &Client, prefix: &str) -> anyhow::Result<String> {
    let ns = testbed::namespace(client, prefix).await?;
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
    Ok(ns)
}

/// A hardened one-container pod that runs once, from an image on the node (never pulled);
/// `command` is merged into the container (`null`: the image's entrypoint).
fn pod(name: &str, image: &str, user: u32, command: serde_json::Value) -> anyhow::Result<Pod> {
    let mut container = serde_json::json!({
        "name": name, "image": image, "imagePullPolicy": "Never",
        "securityContext": {"runAsUser": user, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}},
        // Guaranteed: the kubelet asks for a negative oom_score_adj for the container as for
        // every sandbox, which some machines refuse.
        "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
    });
    if let (Some(container), Some(command)) = (container.as_object_mut(), command.as_object()) {
        container.extend(command.clone());
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [container],
            "restartPolicy": "Never",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        }
    }))?)
}

/// An image holding bash and the libraries it links (as `ldd` finds them), packed from this
/// machine's files by `testbed/docker-archive.sh`: nothing is pulled, and bash's `/dev/tcp` is
/// the tool that connects.
fn bash_image(dir: &Path) -> anyhow::Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    let bash = Path::new("/bin/bash");
    let ldd = Command::new("ldd")
        .arg(bash)
        .output()
        .context("running ldd")?;
    ensure!(ldd.status.success(), "ldd /bin/bash failed");
    let libraries = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect::<Vec<_>>();
    for file in std::iter::once(bash.to_path_buf()).chain(libraries) {
        let inside = rootfs.join(file.strip_prefix("/")?);
        fs::create_dir_all(inside.parent().context("a file in a folder")?)?;
        // fs::copy follows symbolic links and keeps the mode: the files themselves, executable.
        fs::copy(&file, &inside).with_context(|| format!("copying {}", file.display()))?;
    }
    let archive = dir.join("probe.tar");
    let packer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/docker-archive.sh");
    let status = Command::new("bash")
        .arg(&packer)
        .arg(&rootfs)
        .arg(PROBE_IMAGE)
        .arg(r#"{"Entrypoint":["/bin/bash"],"User":"65534:65534"}"#)
        .arg(&archive)
        .status()
        .with_context(|| format!("running {}", packer.display()))?;
    ensure!(status.success(), "{} failed", packer.display());
    Ok(archive)
}
