#!/usr/bin/env bash
# The demo: a local Kubernetes API server (or yours, when KUBECONFIG is set), the
# EventDestination CRD, and every example in examples/, shown with `kubectl get ned`.
#   --once   show the result and exit (used by scripts/test.sh), instead of waiting for Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
once=false
[[ "${1:-}" == "--once" ]] && once=true
NAMESPACE=${DEMO_NAMESPACE:-ngrok-demo}

if [[ -n "${KUBECONFIG:-}" ]]; then
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
else
  step "installing the local test bed (first run on a machine: builds kube-apiserver, ~6 minutes)"
  bash testbed/install.sh >/dev/null
  step "starting a local kube-apiserver, kube-controller-manager and etcd on 127.0.0.1"
  start_testbed "$(mktemp -d)/kubeconfig"
fi

step "installing the CRD from crds/"
kubectl apply -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/eventdestinations.events.ngrok.io

step "applying examples/ into namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n "$NAMESPACE" -f examples/

step "kubectl get ned -n $NAMESPACE"
kubectl get ned -n "$NAMESPACE"
echo
echo "The resources are stored and validated by the API server. The reconciler that creates them"
echo "in ngrok, and fills in ID and Ready, arrives with the 'run' command."

if ! $once; then
  echo
  echo "Try it yourself in another terminal:  export KUBECONFIG=$KUBECONFIG"
  echo "Stop the demo with Ctrl-C."
  while true; do sleep 3600; done
fi
