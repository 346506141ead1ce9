//! The node tier (`testbed up --with-node`): containerd with its CRI plugin, runc and the CNI
//! bridge plugin, kube-scheduler, kube-proxy and a kubelet, so that pods actually run. Needs root
//! and `testbed/install.sh --with-node`. One node test bed per machine at a time: the kubelet,
//! the CNI bridge and the iptables rules (kube-proxy's, and [`keep_pod_traffic_on_machine`]'s)
//! are machine-wide.
//!
//! Pods' traffic stays on the machine: they reach the node's own address, other pods and
//! Services; anything else is refused at once (see [`keep_pod_traffic_on_machine`]).

use std::fs;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::servers::{cache_bin_dir, free_port, which};

/// The node's name.
pub const NODE_NAME: &str = "testbed-node";
/// The sandbox image, built by `testbed/install.sh --with-node` (nothing can be pulled).
pub const PAUSE_IMAGE: &str = "localhost/testbed/pause:3.6";
/// Pods get addresses from this range, on the bridge [`BRIDGE`].
pub const POD_CIDR: &str = "10.89.0.0/16";
/// The bridge the pods' interfaces are attached to; its address is their gateway.
pub const BRIDGE: &str = "testbed0";
/// The iptables chain (filter table) that refuses what pods send off the machine.
pub const EGRESS_CHAIN: &str = "TESTBED-EGRESS";
/// Services get addresses from this range; the API server's `kubernetes` Service is its first.
pub const SERVICE_CIDR: &str = "10.0.0.0/24";

/// The node's programs: the kubelet, kube-scheduler and kube-proxy from the test bed's cache,
/// containerd and ctr from Debian.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    pub kubelet: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kube_proxy: PathBuf,
    pub containerd: PathBuf,
    pub ctr: PathBuf,
    /// Image archives imported into containerd at start (the pause image and any other there).
    pub images: PathBuf,
}

impl NodeBinaries {
    pub fn locate() -> Result<Self> {
        let bin = cache_bin_dir();
        let built = |name: &str| {
            let path = bin.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "no {name} in {}: run testbed/install.sh --with-node",
                    bin.display()
                )
            }
        };
        let installed = |name: &str| {
            which(name).with_context(|| {
                format!("{name} is not on PATH: run testbed/install.sh --with-node")
            })
        };
        let images = bin.with_file_name("images");
        if !images.join("pause.tar").is_file() {
            bail!(
                "no pause image in {}: run testbed/install.sh --with-node",
                images.display()
            );
        }
        Ok(Self {
            kubelet: built("kubelet")?,
            kube_scheduler: built("kube-scheduler")?,
            kube_proxy: built("kube-proxy")?,
            containerd: installed("containerd")?,
            ctr: installed("ctr")?,
            images,
        })
    }
}

/// The machine's address that pods reach it at: the source address of its default route
/// (`TESTBED_NODE_IP` overrides). The API server listens there too, so that the `kubernetes`
/// Service (through kube-proxy) leads pods to it.
pub fn host_ip() -> Result<IpAddr> {
    if let Ok(ip) = std::env::var("TESTBED_NODE_IP") {
        return ip.parse().context("TESTBED_NODE_IP is not an IP address");
    }
    // Connecting a UDP socket sends nothing; it only picks the route's source address.
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket
        .connect("198.51.100.1:9")
        .context("the node tier needs a default route (or TESTBED_NODE_IP)")?;
    let ip = socket.local_addr()?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        bail!("no non-loopback address for the node; set TESTBED_NODE_IP");
    }
    Ok(ip)
}

/// Paths and settings of one node, all under the test bed's directory.
pub(crate) struct Node {
    pub dir: PathBuf,
    pub ip: IpAddr,
}

impl Node {
    pub fn new(testbed_dir: &Path, ip: IpAddr) -> Result<Self> {
        let dir = testbed_dir.join("node");
        fs::create_dir_all(dir.join("cni"))?;
        Ok(Self { dir, ip })
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's configuration: its own root, state and socket (a system containerd is left
    /// alone), the local pause image, CNI from our folder, and `restrict_oom_score_adj`.
    ///
    /// Why `restrict_oom_score_adj`: some machines (these test machines among them) refuse to
    /// lower any process's `oom_score_adj` below 0, even for root, and the kubelet asks for -998
    /// on every pod sandbox; runc then fails with "can't get final child's PID from pipe". The
    /// option makes containerd never ask for less than its own score (0). Real nodes do not
    /// need it.
    pub fn containerd_config(&self) -> Result<PathBuf> {
        let d = &self.dir;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"#,
            root = d.join("containerd-root").display(),
            state = d.join("containerd-state").display(),
            socket = self.containerd_socket().display(),
            cni = d.join("cni").display(),
        );
        let path = d.join("containerd.toml");
        fs::write(&path, config)?;
        // A bridge with a gateway and masquerading; host-local keeps its leases in our folder.
        fs::write(
            d.join("cni/10-testbed.conflist"),
            format!(
                r#"{{"cniVersion":"0.4.0","name":"testbed","plugins":[
{{"type":"bridge","bridge":"{BRIDGE}","isGateway":true,"ipMasq":true,"hairpinMode":true,
 "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{POD_CIDR}"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{ipam}"}}}},
{{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}
"#,
                ipam = d.join("cni-ipam").display()
            ),
        )?;
        Ok(path)
    }

    /// Waits for containerd's socket, then imports every image archive in `dir`.
    pub fn import_images(&self, ctr: &Path, images: &[PathBuf]) -> Result<()> {
        let socket = self.containerd_socket();
        crate::poll_blocking(Duration::from_millis(100), Duration::from_secs(30), || {
            socket.exists().then_some(())
        })
        .context("containerd did not open its socket within 30s")?;
        for image in images {
            import_image(ctr, &self.containerd_socket(), image)?;
        }
        Ok(())
    }

    /// The kubelet's configuration: cgroupfs, no swap check, no node-allocatable enforcement,
    /// anonymous access to its API for the API server (`kubectl logs`), image GC off (nothing
    /// can be pulled again), eviction only in extremis.
    pub fn kubelet_config(&self) -> Result<(PathBuf, u16)> {
        let port = free_port()?;
        let config = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
cgroupDriver: cgroupfs
failSwapOn: false
enforceNodeAllocatable: []
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
",
            ip = self.ip
        );
        let path = self.dir.join("kubelet.yaml");
        fs::write(&path, config)?;
        Ok((path, port))
    }
}

/// Keeps the pods' traffic on the machine. A pod reaches the node's own addresses (delivered
/// locally, never forwarded), other pods (on the bridge) and Services (kube-proxy rewrites a
/// Service address to its endpoint's before routing). Everything else the machine would forward
/// from the bridge, that is towards its default gateway (a Service address kube-proxy has not
/// programmed yet, a mistyped URL, a DNS query to the machine's resolver), is refused on the spot:
/// a test that reaches outside fails at once, instead of sending packets off the machine and
/// hanging until a timeout. A TCP connection gets a reset ("connection refused"): an ICMP error
/// that reaches the connecting socket while connect() still holds it only counts at the SYN's
/// retransmission, a second later. Anything else gets "network unreachable". IPv4 only: pods get
/// no IPv6 address.
///
/// The jump is inserted first in FORWARD. kube-proxy may later put its own jumps above it; its
/// KUBE-FORWARD chain accepts a new connection only when it carries kube-proxy's masquerade
/// mark, which it gives to Service traffic from outside the pod range, never to a pod's packet
/// to an outside address. Rules left by a run that was killed are replaced.
pub(crate) fn keep_pod_traffic_on_machine() -> Result<()> {
    remove_egress_rules();
    iptables(&["-N", EGRESS_CHAIN])?;
    // Pod to pod: with br_netfilter loaded, frames within the bridge traverse FORWARD too.
    iptables(&["-A", EGRESS_CHAIN, "-d", POD_CIDR, "-j", "RETURN"])?;
    iptables(&[
        "-A",
        EGRESS_CHAIN,
        "-p",
        "tcp",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ])?;
    iptables(&[
        "-A",
        EGRESS_CHAIN,
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-net-unreachable",
    ])?;
    iptables(&["-I", "FORWARD", "1", "-i", BRIDGE, "-j", EGRESS_CHAIN])
}

/// Removes [`keep_pod_traffic_on_machine`]'s rules. Best effort: used while tearing down.
pub(crate) fn remove_egress_rules() {
    // `-D` removes one matching rule per call; runs that were killed may have left several.
    while iptables(&["-D", "FORWARD", "-i", BRIDGE, "-j", EGRESS_CHAIN]).is_ok() {}
    let _ = iptables(&["-F", EGRESS_CHAIN]);
    let _ = iptables(&["-X", EGRESS_CHAIN]);
}

/// How many packets pods have sent towards the outside, each refused by
/// [`keep_pod_traffic_on_machine`]: the counters of its REJECT rules.
pub fn refused_egress_packets() -> Result<u64> {
    let output = iptables_output(&["-L", EGRESS_CHAIN, "-n", "-v", "-x"])?;
    // After two header lines, one line per rule: packets, bytes, target, ...
    let refused: Vec<u64> = output
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.get(2) == Some(&"REJECT"))
        .filter_map(|fields| fields.first()?.parse().ok())
        .collect();
    if refused.is_empty() {
        bail!("no REJECT rule in {EGRESS_CHAIN}: {output}");
    }
    Ok(refused.iter().sum())
}

fn iptables(args: &[&str]) -> Result<()> {
    iptables_output(args).map(drop)
}

/// Runs `iptables -w` (waiting for the lock kube-proxy takes too) and returns its stdout.
fn iptables_output(args: &[&str]) -> Result<String> {
    let output = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running iptables (testbed/install.sh --with-node installs it)")?;
    if !output.status.success() {
        bail!(
            "iptables {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Imports one image archive (`docker save` format) into containerd's Kubernetes namespace.
pub fn import_image(ctr: &Path, socket: &Path, archive: &Path) -> Result<()> {
    let output = Command::new(ctr)
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .context("running ctr")?;
    if !output.status.success() {
        bail!(
            "ctr images import {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Stops what containerd runs for the node (kills and deletes every task, so their shims exit)
/// and removes kube-proxy's iptables rules. Best effort: used while tearing down.
pub(crate) fn remove_workloads(binaries: &NodeBinaries, socket: &Path) {
    let ctr = |args: &[&str]| {
        Command::new(&binaries.ctr)
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
    };
    if let Ok(out) = ctr(&["tasks", "ls", "-q"]) {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
        }
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            // A killed task takes a moment to stop; until then `delete` fails.
            crate::poll_blocking(Duration::from_millis(100), Duration::from_secs(5), || {
                let refused = ctr(&["tasks", "delete", id]).is_ok_and(|o| !o.status.success());
                (!refused).then_some(())
            });
        }
    }
    let _ = Command::new(&binaries.kube_proxy)
        .arg("--cleanup")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Unmounts everything mounted below `dir` (pod volumes, container root filesystems, network
/// namespaces), deepest first, so that the directory can be removed.
pub(crate) fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        if let Ok(c) = std::ffi::CString::new(point) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH never blocks.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
