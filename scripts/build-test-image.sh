#!/usr/bin/env bash
# The operator's image for the node tests, built without pulling anything: the release binary,
# the shared libraries it links (the machine's Debian glibc and libgcc, as distroless/cc has),
# Debian's CA bundle (rustls verifies ngrok's certificate with it) and an /etc/passwd with the
# 65532 user, packed by testbed/docker-archive.sh. The same user, entrypoint, command, labels
# and port as the Dockerfile; tests/chart/test_image.py checks that the two agree.
#
#   scripts/build-test-image.sh    prints the archive's path
#   NEO_OPERATOR_BINARY=path       packs that binary instead of building the release binary
#   NEO_IMAGE_TAG=previous         tags it localhost/ngrok-events-operator:previous only, in its own
#                                  archive (another version of the operator beside the test image)
#   NEO_IMAGE_VERSION=0.1.0        its version label (default: the chart's appVersion)
#
# Tagged localhost/ngrok-events-operator:test (what the node tests install) and as the chart's
# default image (so that deploy/ runs unchanged on the test node).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

VERSION=${NEO_IMAGE_VERSION:-$(sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/ngrok-events-operator/Chart.yaml)}
DEFAULT_REPOSITORY=$(sed -n 's/^  repository: //p' charts/ngrok-events-operator/values.yaml | head -1)
REFS="localhost/ngrok-events-operator:test,$DEFAULT_REPOSITORY:$VERSION"
out="$TARGET_DIR/test-image/ngrok-events-operator.tar"
if [[ -n "${NEO_IMAGE_TAG:-}" ]]; then
  # Not the chart's default name: that one stays the test image's, which deploy/ runs.
  REFS="localhost/ngrok-events-operator:$NEO_IMAGE_TAG"
  out="$TARGET_DIR/test-image/ngrok-events-operator-$NEO_IMAGE_TAG.tar"
fi
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || {
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >&2
}

if [[ -n "${NEO_OPERATOR_BINARY:-}" ]]; then
  binary=$NEO_OPERATOR_BINARY   # a binary built elsewhere (e.g. a CI artefact)
else
  step "building the release binary"
  cargo build -q --release --locked --bin ngrok-events-operator
  binary="$TARGET_DIR/release/ngrok-events-operator"
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/ngrok-events-operator"
strip "$rootfs/usr/local/bin/ngrok-events-operator"
# Every library the dynamic loader resolves, and the loader itself, at their paths.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -D -m 0644 LICENSE "$rootfs/licenses/LICENSE"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
install -d -m 1777 "$rootfs/tmp"

config=$(cat <<JSON
{"User":"65532:65532","Entrypoint":["/usr/local/bin/ngrok-events-operator"],"Cmd":["run"],
 "ExposedPorts":{"8080/tcp":{}},
 "Labels":{"org.opencontainers.image.title":"ngrok-events-operator",
  "org.opencontainers.image.description":"Manage ngrok Event Destinations as Kubernetes resources",
  "org.opencontainers.image.source":"https://github.com/ngrok-events-operator/ngrok-events-operator",
  "org.opencontainers.image.version":"$VERSION",
  "org.opencontainers.image.licenses":"Apache-2.0"}}
JSON
)
mkdir -p "$(dirname "$out")"
bash testbed/docker-archive.sh "$rootfs" "$REFS" "$(tr -d '\n' <<<"$config")" "$out"
echo "$out"
