#!/usr/bin/env bash
# The node tier: the operator as users run it. Builds (once, cached) a kubelet, kube-scheduler
# and kube-proxy from the test bed's Debian source, installs containerd, runc and the CNI
# plugins, builds the pause image and the operator's test image without pulling anything,
# starts a one-node test bed and the ngrok emulator where pods reach it, then runs:
#   - the testbed crate's node test (a node registers Ready; a pod runs on it; pods reach the
#     node's address, and a connection to an outside address is refused at once);
#   - tests/chart/test_node_image.py (the test image and the Dockerfile agree);
#   - tests/chart/test_node_e2e.py (helm install/upgrade/uninstall and deploy/ on the node);
#   - tests/chart/test_node_upgrade.py (the upgrade from the previous release, whose image
#     scripts/build-previous-image.sh builds from its commit, once: it is cached).
# Needs root (containerd, the kubelet, iptables). One node test bed per machine at a time.
# Pods' traffic stays on the machine: the test bed refuses what they send towards the default
# gateway (crates/testbed/src/node.rs, keep_pod_traffic_on_machine).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
[[ $(id -u) -eq 0 ]] || { echo "the node tier needs root (containerd, kubelet, iptables)" >&2; exit 1; }

step "installing the node tier (first run on a machine: builds kubelet, kube-scheduler, kube-proxy)"
bash testbed/install.sh --with-node >/dev/null
ensure_rust_tools

# The release the upgrade test starts from: 0.1.0.
NEO_PREVIOUS_RELEASE=004d607
step "the previous release's image ($NEO_PREVIOUS_RELEASE; built once, then cached)"
NEO_PREVIOUS_IMAGE=$(scripts/build-previous-image.sh "$NEO_PREVIOUS_RELEASE")
# After it: cargo links the binary of whichever workspace it built last.
step "the test image (release build, packed from files on this machine)"
NEO_TEST_IMAGE=$(scripts/build-test-image.sh)
export NEO_TEST_IMAGE NEO_PREVIOUS_RELEASE NEO_PREVIOUS_IMAGE

step "testbed: a node registers Ready, runs pods and keeps their traffic on the machine"
cargo nextest run --locked -p testbed --test node --run-ignored only

cargo build -q --locked -p ngrok-api-emulator -p testbed --bins
work=$(mktemp -d)
step "starting a node test bed with the test image and the previous release's"
start_testbed "$work/kubeconfig" --with-node --image "$NEO_TEST_IMAGE" --image "$NEO_PREVIOUS_IMAGE"
node_ip=$(kubectl get node testbed-node -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("'"$node_ip"'", 0)); print(s.getsockname()[1])')
NEO_API_KEY="node-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export NEO_API_KEY NEO_EMULATOR_URL="http://$node_ip:$port"
step "starting the ngrok emulator on $NEO_EMULATOR_URL (reachable from pods)"
"$TARGET_DIR/debug/ngrok-api-emulator" --listen "$node_ip:$port" --api-key "$NEO_API_KEY" >"$work/emulator.log" 2>&1 &
emulator=$!
trap 'kill $emulator 2>/dev/null; kill $TESTBED_PID 2>/dev/null; wait 2>/dev/null || true' EXIT

step "Helm end to end on the node"
scripts/test-chart.sh node "$@"
