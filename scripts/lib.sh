# Shared by scripts/test.sh and scripts/demo.sh.

step() { printf '\n==> %s\n' "$*" >&2; }

# In CI, keep cargo's build outside the fresh clone so that re-runs on the same machine are fast.
if [[ -n "${CI:-}" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/ngrok-events-operator/cargo-target"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

ensure_rust_tools() {
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
}

# Starts `testbed up` in the background, waits until its kubeconfig appears (it is written once
# the API server is ready, and the node too with --with-node), exports KUBECONFIG, and stops the
# test bed when the script exits. Further arguments go to `testbed up`.
start_testbed() {
  local kubeconfig=$1
  shift
  cargo build -q --locked -p testbed
  "$TARGET_DIR/debug/testbed" up --kubeconfig "$kubeconfig" "$@" &
  TESTBED_PID=$!
  trap 'kill $TESTBED_PID 2>/dev/null; wait $TESTBED_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 480); do
    [[ -f "$kubeconfig" ]] && break
    kill -0 "$TESTBED_PID" 2>/dev/null || { echo "the test bed failed to start" >&2; return 1; }
    sleep 0.5
  done
  [[ -f "$kubeconfig" ]] || { echo "the test bed was not ready within 240s" >&2; return 1; }
  export KUBECONFIG=$kubeconfig
}
