#!/usr/bin/env bash
# Runs every test, on a fresh machine too: installs what the tests need (the test bed's API
# server build is cached outside the repository), checks formatting and lints, starts one real
# kube-apiserver for the whole run, runs all tests, runs the demo once as a smoke test, then the
# node tier (scripts/test-node.sh: the operator's image on a one-node cluster, through Helm).
#
# Uses an existing cluster instead when USE_EXISTING_CLUSTER=1 (with KUBECONFIG).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

step "installing the test bed (first run on a machine: builds kube-apiserver, ~6 minutes)"
bash testbed/install.sh >/dev/null
# The Kubernetes 1.36 CRD server of the CEL tests (first run on a machine: ~270 MB, ~5 minutes).
bash testbed/install.sh --crd-server-1.36 >/dev/null
ensure_rust_tools

step "formatting and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building"
cargo build --workspace --all-targets --locked

if [[ "${USE_EXISTING_CLUSTER:-}" != 1 ]]; then
  step "starting the test bed shared by all tests"
  start_testbed "$(mktemp -d)/kubeconfig"
fi
export USE_EXISTING_CLUSTER=1

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

step "chart, manifests and install tests"
scripts/test-chart.sh

step "demo smoke run"
scripts/demo.sh --once

# Last, with its own node test bed (one per machine): the operator's image in a pod, through Helm.
step "node tier: the image on a real node, installed by Helm"
scripts/test-node.sh
