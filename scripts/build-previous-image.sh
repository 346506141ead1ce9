#!/usr/bin/env bash
# The image of a previous release, for the node tier's upgrade test (tests/chart/
# test_node_upgrade.py): the operator built from that commit's tree, packed by this tree's
# scripts/build-test-image.sh and tagged localhost/ngrok-events-operator:previous.
#
#   scripts/build-previous-image.sh COMMIT    prints the archive's path
#
# The commit's tree is extracted (git archive: needs the repository's history) into the cache,
# outside the repository, and built there with this tree's cargo target directory: while the
# Cargo.lock is the same, every dependency is reused and only the workspace's own crates compile.
# Cargo names those crates' artifacts by their path within the workspace, the same in both trees,
# and judges them fresh by modification times: sharing them, each tree's build would take the
# other's for its own (the previous tree's files are older than any build). A profile setting of
# their own (stripping debug info only, where the release profile strips all symbols: the image
# strips them anyway) gives the previous tree's crates other names. The binary is copied out at
# once (cargo links whichever tree it built last to target/release/ngrok-events-operator) and
# kept by commit: later runs build nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

[[ $# -eq 1 ]] || { echo "usage: $0 COMMIT" >&2; exit 2; }
commit=$(git rev-parse --verify --quiet "$1^{commit}") || {
  echo "commit $1 is not in this clone (a shallow clone? git fetch --unshallow)" >&2
  exit 1
}
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ngrok-events-operator/previous/$commit"
binary="$CACHE/ngrok-events-operator"

if [[ ! -x "$binary" ]]; then
  step "building the operator as of $1 (${commit:0:12}) in $CACHE/tree"
  rm -rf "$CACHE/tree"
  mkdir -p "$CACHE/tree"
  git archive "$commit" | tar -x -C "$CACHE/tree"
  own_names=()
  for crate in $(cd "$CACHE/tree" && cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(*(p["name"] for p in json.load(sys.stdin)["packages"]))'); do
    own_names+=(--config "profile.release.package.$crate.strip=\"debuginfo\"")
  done
  (cd "$CACHE/tree" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build -q --release --locked "${own_names[@]}" --bin ngrok-events-operator)
  cp "$TARGET_DIR/release/ngrok-events-operator" "$binary.partial"
  mv "$binary.partial" "$binary"
  rm -rf "$CACHE/tree"   # the source is in git; only the binary is worth keeping
fi

version=$(git show "$commit:charts/ngrok-events-operator/Chart.yaml" | sed -n 's/^appVersion: "\(.*\)"/\1/p')
NEO_OPERATOR_BINARY="$binary" NEO_IMAGE_TAG=previous NEO_IMAGE_VERSION="$version" scripts/build-test-image.sh
