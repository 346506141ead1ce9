#!/usr/bin/env bash
# The demo: ngrok Event Destinations and Subscriptions managed from Kubernetes, end to end on
# this machine.
#
#   1. a Kubernetes API server: the local test bed (or yours, when KUBECONFIG is set);
#   2. ngrok's API: the bundled emulator (or the real API, when NGROK_API_KEY is set);
#   3. the CRDs, the operator, and every example in examples/: a destination of each target,
#      and a subscription that sends HTTP traffic events to two of them;
#   4. `kubectl get ned,nes` with the ids ngrok assigned and Ready=True: destinations that
#      would actually receive events.
#
#   --once   show the result and exit (scripts/test.sh runs it this way), instead of waiting for Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
once=false
[[ "${1:-}" == "--once" ]] && once=true
NAMESPACE=${DEMO_NAMESPACE:-ngrok-demo}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

step "building the operator and the ngrok API emulator"
cargo build -q --locked -p ngrok-events-operator -p ngrok-api-emulator -p testbed --bins

if [[ -n "${KUBECONFIG:-}" ]]; then
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
else
  step "installing the local test bed (first run on a machine: builds kube-apiserver, ~6 minutes)"
  bash testbed/install.sh >/dev/null
  step "starting a local kube-apiserver, kube-controller-manager and etcd on 127.0.0.1"
  start_testbed "$work/kubeconfig"
  pids+=("$TESTBED_PID")
fi

if [[ -n "${NGROK_API_KEY:-}" ]]; then
  api_url=${NGROK_API_URL:-https://api.ngrok.com}
  step "using ngrok's API at $api_url with your NGROK_API_KEY (the examples' ARNs are placeholders: ngrok may refuse them)"
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export NGROK_API_KEY="demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  api_url="http://127.0.0.1:$port"
  step "starting the ngrok API emulator on $api_url"
  "$TARGET_DIR/debug/ngrok-api-emulator" --listen "127.0.0.1:$port" --latency-ms 50 >"$work/emulator.log" 2>&1 &
  pids+=($!)
fi

step "installing the CRDs from crds/"
# Their CEL rules (x-kubernetes-validations) are unknown to the OpenAPI of a server older than
# 1.23, where kubectl's client-side validation would refuse them; such a server drops them.
validate=()
minor=$(kubectl version -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | tail -1 || true)
[[ -n "$minor" && "$minor" -lt 23 ]] && validate=(--validate=false)
kubectl apply "${validate[@]}" -f crds/
kubectl wait --for=condition=Established --timeout=60s \
  crd/eventdestinations.events.ngrok.io crd/eventsubscriptions.events.ngrok.io

# Only the demo's namespace: on your own cluster the demo must not touch any other resource.
step "starting the operator for namespace $NAMESPACE (logs: $work/operator.log)"
"$TARGET_DIR/debug/ngrok-events-operator" run --api-url "$api_url" --namespace "$NAMESPACE" \
  --metrics-addr 127.0.0.1:0 >"$work/operator.log" 2>&1 &
pids+=($!)

step "applying examples/ into namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NAMESPACE" -f examples/

step "waiting until every destination and subscription is Ready"
if ! kubectl wait -n "$NAMESPACE" --for=condition=Ready ned,nes --all --timeout=60s; then
  kubectl get ned,nes -n "$NAMESPACE" -o wide
  echo "--- operator log ---"; tail -n 30 "$work/operator.log"
  exit 1
fi

step "kubectl get ned,nes -n $NAMESPACE -o wide"
kubectl get ned,nes -n "$NAMESPACE" -o wide

if ! $once; then
  echo
  echo "Each row is an object in ngrok's API, created by the operator: destinations (ed_ ids) and the"
  echo "subscription (esb_ id) that sends HTTP traffic events to two of them."
  echo "Try it in another terminal:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl describe nes -n $NAMESPACE http-traffic"
  echo "  kubectl delete ned -n $NAMESPACE kinesis-role    # waits: the subscription still sends to it"
  echo "  kubectl delete nes -n $NAMESPACE http-traffic    # then both go, in ngrok too"
  echo "Stop the demo with Ctrl-C."
  while true; do sleep 3600; done
fi
