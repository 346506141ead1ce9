#!/usr/bin/env bash
# The install tests: the Helm chart (rendered, linted and installed with Helm's own Go SDK via
# helm-python-sdk), deploy/, RBAC proven by running the operator with the chart's
# ServiceAccount, Kubernetes-schema and checkov scans, the Dockerfile, and Argo CD's health.lua
# under Lua 5.1. Installs what it needs: lua5.1 (apt) and a virtualenv outside the repository.
#
#   scripts/test-chart.sh                  run the tests (KUBECONFIG when set, else its own test bed)
#   scripts/test-chart.sh render-deploy    regenerate deploy/ from the chart (scripts/generate.sh)
#   scripts/test-chart.sh node             the node tier's tests (scripts/test-node.sh runs them)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

VENV="${XDG_CACHE_HOME:-$HOME/.cache}/ngrok-events-operator/venv"

ensure_venv() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want=$(sha256sum tests/chart/requirements.txt | cut -d' ' -f1)
  if [[ ! -x "$VENV/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    step "installing the chart tests' Python packages into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r tests/chart/requirements.txt
    echo "$want" >"$stamp"
  fi
}

ensure_lua() {
  command -v lua5.1 >/dev/null && return
  step "installing lua5.1 (Argo CD runs health checks with Lua 5.1 semantics)"
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 >/dev/null
}

# promtool unit-tests the chart's alerts (tests/chart/test_monitoring.py). Debian's prometheus
# package brings it; --no-install-recommends keeps out what a test does not run, and a
# policy-rc.d that refuses every start keeps its server from being started by the install.
ensure_promtool() {
  command -v promtool >/dev/null && return
  step "installing promtool (Debian's prometheus package)"
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  local policy=/usr/sbin/policy-rc.d placed=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    placed=1
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [[ -n $placed ]] && "${sudo[@]}" rm -f "$policy"
  command -v promtool >/dev/null
}

ensure_venv
if [[ "${1:-}" == render-deploy ]]; then
  exec "$VENV/bin/python" tests/chart/render_deploy.py deploy
fi
# The node tier's tests (test_node_*.py) need a node test bed, the test image and the emulator:
# only scripts/test-node.sh runs them, with `node` as the first argument, and KUBECONFIG set.
if [[ "${1:-}" == node ]]; then
  shift
  cd tests/chart
  exec "$VENV/bin/python" -m pytest -p no:cacheprovider -W ignore::urllib3.exceptions.InsecureRequestWarning -q -rA "$@" test_node_*.py
fi
ensure_lua
ensure_promtool

step "building the operator and the ngrok API emulator"
cargo build -q --locked -p ngrok-events-operator -p ngrok-api-emulator --bins
export NEO_TARGET_DIR="$TARGET_DIR"

if [[ -z "${KUBECONFIG:-}" ]]; then
  step "starting a test bed for the chart tests"
  bash testbed/install.sh >/dev/null
  start_testbed "$(mktemp -d)/kubeconfig"
fi

step "chart, manifests, RBAC, image and Argo CD health tests"
cd tests/chart
"$VENV/bin/python" -m pytest -p no:cacheprovider -W ignore::urllib3.exceptions.InsecureRequestWarning -q -rA "$@" --ignore-glob='test_node_*.py' . \
  | grep -v '^PASSED '
exit "${PIPESTATUS[0]}"
